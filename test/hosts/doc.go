// Package hosts starts real test machines on this Linux machine for
// driftless's tests: each host has its own network namespace and address,
// its own overlay root filesystem over a cached Debian base, and sshd on
// port 22. It needs root and Debian's debootstrap, iproute2, util-linux,
// openssh-server (and systemd-nspawn for kind-2 hosts, dpkg-dev for the apt
// repository, rpm and createrepo-c for the rpm one); without them the test
// is skipped with the reason.
//
// Usage:
//
//	lab := hosts.NewLab(t, hosts.Options{}) // bridge dlbr<N>, 10.77.N.0/24; torn down in t.Cleanup
//	h := lab.Kind1("web-1")                 // sshd as PID 1 in a chroot: files, packages, nft, routes (≈0.1 s)
//	s := lab.Kind2("app-1")                 // systemd-nspawn booting real systemd: services, reboots (≈1 s)
//	tr, err := ssh.Dial(ctx, ssh.Config{Address: h.Address,
//		KeyFiles: []string{lab.ClientKeyFile}, KnownHostsFile: lab.KnownHostsFile})
//	os.ReadFile(filepath.Join(h.Root, "etc/app.conf")) // assert on the host's files directly
//	h.MustExec(t, "rm /etc/app.conf")                  // change the host behind driftless's back
//	lab.AptRepo(hosts.HelloDebs()...)                  // dl-hello 1.0 and 2.0 for `apt-get install`
//	r := lab.Kind1RPM("db-1")                          // a kind-1 host with dnf and rpm, no dpkg or apt
//	lab.RPMRepo(hosts.HelloRPMs()...)                  // dl-hello 1.0-1 and 2.0-1 for `dnf install`
//	s.Reboot()                                         // a real reboot of a kind-2 host
//	h.AddLogin("deploy", true)                         // a non-root key login with passwordless sudo
//	hosts.NewLab(t, hosts.Options{SSHDConfig: []string{"MaxSessions 10"}}) // sshd settings for every host
//
// A Host has Name, Kind, Address, Root (its overlay root as seen from the
// test), Netns (for `ip netns exec`), HostKey, AuthorizedKey() and
// KnownHostsLine(); Exec runs a script inside it as root (all its
// namespaces and its root). Root logs in with the lab's client key
// (ClientKeyFile, Signer); KnownHostsFile lists every host started.
//
// A lab is one isolated network: hosts reach each other and the root
// namespace's BridgeIP, nothing else (no default route, no DNS). Services a
// test starts on BridgeIP (like the flat apt repository of Lab.AptRepo) are
// reachable from the hosts. Several test processes may run labs at once:
// each lab takes a free slot N under /run/driftless-testbed with a file
// lock, and NewLab first cleans what killed runs left in free slots
// (CleanStale).
//
// The first use on a machine builds the base with debootstrap (about a
// minute and a half) into os.UserCacheDir()/driftless-testbed, guarded by a
// file lock; later runs reuse it. Hosts never write the shared base: each
// writes its own overlay. The first Kind1RPM builds, the same way, a layer
// over the base with Debian's own dnf and rpm installed by the base's apt
// (a few minutes: python3 comes with dnf), and dpkg and apt removed.
package hosts
