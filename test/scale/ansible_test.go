package scale

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftless/driftless/test/hosts"
)

// ansible is one Ansible project folder for a fleet: configuration,
// inventory and the playbook equivalent to the declared resources.
type ansible struct {
	dir string
	env []string
}

// newAnsible writes ansible.cfg, the inventory and the playbook into dir.
// Every setting that makes Ansible fast on many hosts is on: forks for the
// whole fleet, pipelining, ControlPersist, no fact gathering.
func newAnsible(dir string, lab *hosts.Lab, fleet []*hosts.Host, m mix) (*ansible, error) {
	a := &ansible{dir: dir}
	cfg := strings.Join([]string{
		"[defaults]",
		"inventory = " + filepath.Join(dir, "inventory.ini"),
		fmt.Sprintf("forks = %d", len(fleet)),
		"host_key_checking = True",
		"gathering = explicit",
		"interpreter_python = /usr/bin/python3.11",
		"local_tmp = " + filepath.Join(dir, "local"),
		"remote_tmp = /tmp/.ansible-remote",
		"retry_files_enabled = False",
		"nocolor = True",
		"",
		"[ssh_connection]",
		"pipelining = True",
		"ssh_args = -o ControlMaster=auto -o ControlPersist=600s -o IdentitiesOnly=yes" +
			" -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + lab.KnownHostsFile,
		// The socket path must stay under the 108 bytes of a Unix socket name.
		"control_path_dir = " + filepath.Join(dir, "cp"),
		"control_path = %(directory)s/%%C",
		"",
	}, "\n")
	var inv strings.Builder
	inv.WriteString("[scale]\n")
	for _, h := range fleet {
		fmt.Fprintf(&inv, "%s ansible_host=%s ansible_user=root ansible_ssh_private_key_file=%s\n",
			h.Name, h.Address, lab.ClientKeyFile)
	}
	book, err := playbook(m)
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"ansible.cfg": []byte(cfg), "inventory.ini": []byte(inv.String()), "scale.yml": book} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("write ansible %s: %w", name, err)
		}
	}
	for _, sub := range []string{"cp", "local", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create ansible %s folder: %w", sub, err)
		}
	}
	a.env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"),
		"HOME="+filepath.Join(dir, "home"), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0")
	return a, nil
}

// playbook is the Ansible equivalent of m.resources(): one task per
// resource, in the same order, with the same contents, modes and owners.
// Services are ignore_errors: as for driftless, a host without systemd
// fails their check but the scan goes on.
func playbook(m mix) ([]byte, error) {
	var tasks []map[string]any
	for i := 0; i < m.Files; i++ {
		tasks = append(tasks, map[string]any{"name": "file " + filePath(i), "ansible.builtin.copy": map[string]any{
			"dest": filePath(i), "content": fileContent(i), "mode": "0644", "owner": "root", "group": "root"}})
	}
	for i := 0; i < m.Packages; i++ {
		tasks = append(tasks, map[string]any{"name": "package " + basePackages[i],
			"ansible.builtin.apt": map[string]any{"name": basePackages[i], "state": "present"}})
	}
	for i := 0; i < m.Services; i++ {
		tasks = append(tasks, map[string]any{"name": "service " + baseServices[i], "ignore_errors": true,
			"ansible.builtin.service": map[string]any{"name": baseServices[i], "state": "started", "enabled": true}})
	}
	play := []map[string]any{{"name": "scale", "hosts": "all", "gather_facts": false, "tasks": tasks}}
	out, err := yaml.Marshal(play)
	if err != nil {
		return nil, fmt.Errorf("render playbook: %w", err)
	}
	return out, nil
}

// run runs ansible-playbook with args, its output to log, and returns the
// wall time, the recap per host and the peak resident memory of its whole
// process group (the controller and its forks) in bytes.
func (a *ansible) run(ctx context.Context, log string, args ...string) (time.Duration, map[string]recap, int64, error) {
	f, err := os.Create(log)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("create ansible log: %w", err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "ansible-playbook", args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = a.dir, a.env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, nil, 0, fmt.Errorf("start ansible-playbook: %w", err)
	}
	stop := make(chan struct{})
	peak := make(chan int64)
	go func() { peak <- samplePgroupRSS(cmd.Process.Pid, stop) }()
	err = cmd.Wait()
	wall := time.Since(start)
	close(stop)
	rss := <-peak
	out, rerr := os.ReadFile(log)
	if rerr != nil {
		return 0, nil, 0, fmt.Errorf("read ansible log: %w", rerr)
	}
	recaps := parseRecap(out)
	// ansible-playbook exits non-zero when a host failed or changed in
	// check mode with failures; the recap says what happened per host.
	if len(recaps) == 0 {
		return wall, nil, rss, fmt.Errorf("ansible-playbook %s: no recap (%v): %s", strings.Join(args, " "), err, tail(out))
	}
	return wall, recaps, rss, nil
}

// closeMasters ends the ControlPersist connections Ansible left running.
func (a *ansible) closeMasters() {
	socks, _ := filepath.Glob(filepath.Join(a.dir, "cp", "*"))
	for _, s := range socks {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+s, "-O", "exit", "scale").Run() //nolint:errcheck // best effort
		cancel()
	}
}

// recap is one host's line of Ansible's PLAY RECAP.
type recap struct {
	OK, Changed, Unreachable, Failed, Skipped, Rescued, Ignored int
}

var recapLine = regexp.MustCompile(`^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)`)

// parseRecap reads the PLAY RECAP lines of an ansible-playbook output.
func parseRecap(out []byte) map[string]recap {
	res := map[string]recap{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	inRecap := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "PLAY RECAP") {
			inRecap = true
			continue
		}
		if !inRecap {
			continue
		}
		m := recapLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n := make([]int, 7)
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+2])
		}
		res[m[1]] = recap{n[0], n[1], n[2], n[3], n[4], n[5], n[6]}
	}
	return res
}

// samplePgroupRSS sums the resident memory of every process in process
// group pgid every 50 ms until stop closes, and returns the largest sum.
func samplePgroupRSS(pgid int, stop <-chan struct{}) int64 {
	page := int64(os.Getpagesize())
	var peak int64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if sum := pgroupRSS(pgid) * page; sum > peak {
			peak = sum
		}
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
}

// pgroupRSS is the resident pages of the processes of group pgid.
func pgroupRSS(pgid int) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		// f[0] is field 3 (state): pgrp is field 5, rss field 24.
		if len(f) < 22 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		rss, _ := strconv.ParseInt(f[21], 10, 64)
		sum += rss
	}
	return sum
}

// tail is the end of out, for error messages.
func tail(out []byte) string {
	if len(out) > 3000 {
		out = out[len(out)-3000:]
	}
	return string(out)
}
