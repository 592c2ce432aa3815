// Package hosts starts real test machines on this Linux machine for
// driftless's tests: each host has its own network namespace and address,
// its own overlay root filesystem over a cached Debian base, and sshd on
// port 22. It needs root and Debian's debootstrap, iproute2, util-linux,
// openssh-server (and systemd-nspawn for kind-2 hosts); without them the
// test is skipped with the reason.
//
// Usage:
//
//	lab := hosts.NewLab(t, hosts.Options{})   // bridge dlbr<N>, 10.77.N.0/24; torn down in t.Cleanup
//	h := lab.Kind1("web-1")                   // sshd as PID 1 in a chroot: files, packages, nft, routes
//	s := lab.Kind2("app-1")                   // systemd-nspawn booting real systemd: services
//	cfg := ssh.Config{Address: h.Address, KeyFiles: []string{lab.ClientKeyFile}, KnownHostsFile: lab.KnownHostsFile}
//	os.ReadFile(filepath.Join(h.Root, "etc/app.conf"))  // assert on the host's files directly
//	h.MustExec(t, "rm /etc/app.conf")                   // change the host behind driftless's back
//
// A lab is one isolated network: hosts reach each other and the root
// namespace's BridgeIP, nothing else (no default route, no DNS). Services a
// test starts on BridgeIP (a flat apt repository, see Lab.AptRepo) are
// reachable from the hosts. Several test processes may run labs at once:
// each lab takes a free slot N under /run/driftless-testbed with a file
// lock, and cleans what a killed earlier run left in that slot.
//
// The first use on a machine builds the base with debootstrap (about a
// minute and a half) into os.UserCacheDir()/driftless-testbed; later runs
// reuse it. Hosts never write the shared base: each writes its own overlay.
package hosts
