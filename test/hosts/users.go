package hosts

import (
	"fmt"
	"regexp"
)

// AddLogin creates a login on the host that the lab's client key opens,
// with passwordless sudo when sudo is true. Its password is '*' rather
// than locked: sshd without PAM refuses key logins to locked accounts.
func (h *Host) AddLogin(name string, sudo bool) error {
	// What useradd accepts without surprises, and safe in a shell line.
	if !regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`).MatchString(name) {
		return fmt.Errorf("add login %q on %s: not a valid user name", name, h.Name)
	}
	script := fmt.Sprintf(`set -e
useradd -m -s /bin/bash %[1]s
usermod -p '*' %[1]s
install -d -o %[1]s -g %[1]s -m 700 /home/%[1]s/.ssh
install -o %[1]s -g %[1]s -m 600 /root/.ssh/authorized_keys /home/%[1]s/.ssh/authorized_keys
`, name)
	if sudo {
		script += fmt.Sprintf("echo '%[1]s ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/%[1]s\nchmod 440 /etc/sudoers.d/%[1]s\n", name)
	}
	if _, err := h.Exec(script); err != nil {
		return fmt.Errorf("add login %s: %w", name, err)
	}
	return nil
}
