package targets

import (
	"bytes"
	"context"
	"fmt"

	"github.com/driftless/driftless/config"
)

// Restore puts back the snapshot: the old unit file (or none), then the
// old enabled and running states.
func (d *ServiceDriver) Restore(ctx context.Context, t Transport, r config.Resource, snapshot State) error {
	if err := validUnitName(r.Name); err != nil {
		return err
	}
	if ok, err := nativeStep(ctx, t, StepRestore, r, snapshot); ok {
		return err
	}
	u := shq(unitName(r.Name))
	sandbox := t.Root() != ""
	// changed says whether the running unit must be restarted to be the
	// old one again; a restore that only re-enables or starts it does not
	// restart a healthy process.
	changed := true
	if snapshot.Fields["unitfile"] == "1" {
		cur, err := d.readUnit(ctx, t, r)
		if err != nil {
			return err
		}
		if changed = !bytes.Equal(cur, snapshot.Content); changed {
			if err := t.WriteFile(ctx, unitPath(r.Name), snapshot.Content, 0o644); err != nil {
				return fmt.Errorf("restore %s: write unit file: %w", r.ID(), err)
			}
		}
	} else {
		p, err := hostPath(t.Root(), unitPath(r.Name))
		if err != nil {
			return err
		}
		script := "rm -f -- " + shq(p) + "\n"
		existed := snapshot.Fields["load"] != "" && snapshot.Fields["load"] != "not-found"
		if !existed && !sandbox {
			// The unit did not exist at all: stop and disable it while
			// systemd still knows it, then forget it.
			script = "systemctl disable -q --now -- " + u + " 2>/dev/null || true\n" + script +
				"systemctl daemon-reload\nsystemctl reset-failed -- " + u + " 2>/dev/null || true\n"
		}
		if err := runScript(ctx, t, "restore "+r.ID(), script); err != nil {
			return err
		}
		if !existed {
			return nil
		}
	}
	if sandbox {
		return nil
	}
	script := "set -e\nsystemctl daemon-reload\n"
	switch {
	case isEnabled(snapshot.Fields["enabled"]):
		script += "systemctl enable -q -- " + u + "\n"
	case snapshot.Fields["enabled"] == "disabled":
		script += "systemctl disable -q -- " + u + "\n"
	}
	switch {
	case isRunning(snapshot.Fields["active"]) && changed:
		script += "systemctl restart -- " + u + "\n"
	case isRunning(snapshot.Fields["active"]):
		script += "systemctl start -- " + u + "\n"
	default:
		script += "systemctl stop -- " + u + "\n"
	}
	return runScript(ctx, t, "restore "+r.ID(), script)
}

// readUnit returns the unit file on the host, nil when there is none.
func (d *ServiceDriver) readUnit(ctx context.Context, t Transport, r config.Resource) ([]byte, error) {
	p, err := hostPath(t.Root(), unitPath(r.Name))
	if err != nil {
		return nil, err
	}
	res, err := t.Run(ctx, "if [ -f "+shq(p)+" ]; then echo unitfile=1; cat -- "+shq(p)+"; fi", nil)
	if err != nil {
		return nil, fmt.Errorf("restore %s: read unit file: %w", r.ID(), err)
	}
	if res.Exit != 0 {
		return nil, fmt.Errorf("restore %s: read unit file: exit %d: %s", r.ID(), res.Exit, trimOutput(res.Stderr))
	}
	body, _ := bytes.CutPrefix(res.Stdout, []byte("unitfile=1\n"))
	if len(res.Stdout) == 0 {
		return nil, nil
	}
	return body, nil
}
