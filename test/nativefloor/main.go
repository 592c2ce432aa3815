// Command nativefloor is the floor of the agent's benchmarks: the
// smallest native program doing on a host, in one call, the work the
// agent does there. It is copied into a test host's root and run over one
// SSH session; its request comes on stdin as JSON.
//
//	nativefloor scan   stat and hash files, one dpkg-query over the
//	                   packages, systemctl is-active over the units (or
//	                   a fast failure where systemd is not running)
//	nativefloor apply  write files (temporary file, mode, sync, rename,
//	                   folder sync), make or remove folders, make links,
//	                   remove files, write kernel parameters
//
// It checks nothing and keeps nothing: it is what the cheapest way to do
// the same work costs, not a second implementation of the kinds.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ScanRequest is what scan observes.
type ScanRequest struct {
	Files    []string `json:"files"`
	Packages []string `json:"packages"`
	Units    []string `json:"units"`
}

// Op is one change of apply.
type Op struct {
	// Op is write, mkdir, rmdir, symlink, remove or sysctl.
	Op     string `json:"op"`
	Path   string `json:"path"`
	Data   []byte `json:"data,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	Target string `json:"target,omitempty"`
	// Value is a kernel parameter's value, written into Path (its
	// /proc/sys file).
	Value string `json:"value,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nativefloor scan|apply < request.json")
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var err error
	switch os.Args[1] {
	case "scan":
		var req ScanRequest
		if err = json.NewDecoder(os.Stdin).Decode(&req); err == nil {
			err = scan(out, req)
		}
	case "apply":
		var ops []Op
		if err = json.NewDecoder(os.Stdin).Decode(&ops); err == nil {
			err = apply(out, ops)
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nativefloor:", err)
		os.Exit(1)
	}
}

// scan prints, per file, its mode, owner and group (numbers and names)
// and its SHA-256, or that it is missing; then dpkg-query's line per
// package; then systemctl's answer per unit.
func scan(out *bufio.Writer, req ScanRequest) error {
	names := map[string]string{}
	name := func(kind string, id uint32) string {
		key := kind + strconv.FormatUint(uint64(id), 10)
		if n, ok := names[key]; ok {
			return n
		}
		n := strconv.FormatUint(uint64(id), 10)
		if kind == "u" {
			if u, err := user.LookupId(n); err == nil {
				n = u.Username
			}
		} else if g, err := user.LookupGroupId(n); err == nil {
			n = g.Name
		}
		names[key] = n
		return n
	}
	for _, p := range req.Files {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(out, "%s missing\n", p)
			continue
		}
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:])
		}
		fmt.Fprintf(out, "%s %o %d %d %s %s %s\n", p, fi.Mode().Perm(), st.Uid, st.Gid, name("u", st.Uid), name("g", st.Gid), sum)
	}
	if len(req.Packages) > 0 {
		cmd := exec.Command("dpkg-query", append([]string{"-W", "-f=${Package} ${db:Status-Abbrev} ${Version}\\n", "--"}, req.Packages...)...)
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("dpkg-query: %w", err)
		}
	}
	if len(req.Units) > 0 {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			fmt.Fprintln(out, "units: systemd is not running on this host")
			return nil
		}
		cmd := exec.Command("systemctl", append([]string{"is-active", "--"}, req.Units...)...)
		cmd.Stdout = out
		_ = cmd.Run() // inactive units make it exit 3
	}
	return nil
}

// apply runs the changes in order and stops at the first failure.
func apply(out *bufio.Writer, ops []Op) error {
	dirs := map[string]bool{}
	for i, o := range ops {
		if err := applyOne(o, dirs); err != nil {
			return fmt.Errorf("op %d (%s %s): %w", i, o.Op, o.Path, err)
		}
	}
	// The renames are made durable as the agent's writes are: their
	// folders synced once each, after the batch.
	for d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(out, len(ops))
	return nil
}

func applyOne(o Op, dirs map[string]bool) error {
	switch o.Op {
	case "write":
		dirs[filepath.Dir(o.Path)] = true
		return writeFile(o.Path, o.Data, fs.FileMode(o.Mode))
	case "mkdir":
		if err := os.Mkdir(o.Path, fs.FileMode(o.Mode)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return os.Chmod(o.Path, fs.FileMode(o.Mode))
	case "rmdir":
		return syscall.Rmdir(o.Path)
	case "symlink":
		tmp := filepath.Join(filepath.Dir(o.Path), ".floor-"+filepath.Base(o.Path))
		if err := os.Symlink(o.Target, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, o.Path)
	case "remove":
		return syscall.Unlink(o.Path)
	case "sysctl":
		return os.WriteFile(o.Path, []byte(o.Value+"\n"), 0)
	}
	return fmt.Errorf("unknown op %q", o.Op)
}

// writeFile writes data beside p, syncs it, and renames it in place.
func writeFile(p string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".floor-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
