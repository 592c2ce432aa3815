package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/driftless/driftless/config"
)

// The service kind's native apply: systemd over D-Bus (go-systemd), the
// unit file written in process. It does what Apply's, Restore's and
// Refresh's systemctl calls do, with the same jobs: a job is waited for,
// as systemctl waits, and one that does not end "done" is an error.

var (
	_ NativeKind      = (*ServiceDriver)(nil)
	_ NativeRefresher = (*ServiceDriver)(nil)
)

// ApplyNative is Apply on the host.
func (d *ServiceDriver) ApplyNative(ctx context.Context, h *Host, r config.Resource, observed State) error {
	s, err := specOf(r, validateService)
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	if s.Unit == "" && s.UnitSource != "" {
		return fmt.Errorf("apply %s: unit_source %s was not loaded into the unit's content", r.ID(), s.UnitSource)
	}
	_, unitChanged := serviceDiffs(r, s, observed)
	if unitChanged {
		if err := writeUnitNative(ctx, h, r, []byte(s.Unit)); err != nil {
			return fmt.Errorf("apply %s: %w", r.ID(), err)
		}
	}
	if h.Root() != "" {
		return nil
	}
	sd, err := h.systemd()
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	u := unitName(r.Name)
	if unitChanged {
		if err := sd.reload(ctx); err != nil {
			return fmt.Errorf("apply %s: %w", r.ID(), err)
		}
	}
	if s.Enabled != nil {
		if err := sd.enable(ctx, u, *s.Enabled); err != nil {
			return fmt.Errorf("apply %s: %w", r.ID(), err)
		}
	}
	switch {
	case s.State == ServiceRunning && unitChanged:
		err = sd.job(ctx, "restart", u)
	case s.State == ServiceRunning:
		err = sd.job(ctx, "start", u)
	case s.State == ServiceStopped:
		err = sd.job(ctx, "stop", u)
	case unitChanged:
		// No declared state: keep what runs, but let it use the new unit.
		err = sd.job(ctx, "try-restart", u)
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", r.ID(), err)
	}
	return nil
}

// RefreshNative is Refresh on the host: a running unit restarted (or
// reloaded); a unit that is not running stays stopped.
func (*ServiceDriver) RefreshNative(ctx context.Context, h *Host, r config.Resource) error {
	if h.Root() != "" {
		return nil
	}
	verb := "try-restart"
	if s, err := specOf(r, validateService); err == nil && s.OnNotify == "reload" {
		verb = "reload"
	}
	sd, err := h.systemd()
	if err != nil {
		return fmt.Errorf("refresh %s: %w", r.ID(), err)
	}
	u := unitName(r.Name)
	active, err := sd.active(ctx, u)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", r.ID(), err)
	}
	if !active {
		return nil
	}
	if err := sd.job(ctx, verb, u); err != nil {
		return fmt.Errorf("refresh %s: %w", r.ID(), err)
	}
	return nil
}

// RestoreNative is Restore on the host: the old unit file (or none), then
// the old enabled and running states.
func (*ServiceDriver) RestoreNative(ctx context.Context, h *Host, r config.Resource, snapshot State) error {
	u := unitName(r.Name)
	sandbox := h.Root() != ""
	p, err := hostPath(h.Root(), unitPath(r.Name))
	if err != nil {
		return err
	}
	var sd *systemd
	if !sandbox {
		if sd, err = h.systemd(); err != nil {
			return fmt.Errorf("restore %s: %w", r.ID(), err)
		}
	}
	// changed says whether the running unit must be restarted to be the
	// old one again; a restore that only re-enables or starts it does not
	// restart a healthy process.
	changed := true
	if snapshot.Fields["unitfile"] == "1" {
		cur, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore %s: read unit file: %w", r.ID(), err)
		}
		if changed = err != nil || string(cur) != string(snapshot.Content); changed {
			if err := writeUnitNative(ctx, h, r, snapshot.Content); err != nil {
				return fmt.Errorf("restore %s: %w", r.ID(), err)
			}
		}
	} else {
		existed := snapshot.Fields["load"] != "" && snapshot.Fields["load"] != "not-found"
		if !existed && !sandbox {
			// The unit did not exist at all: stop and disable it while
			// systemd still knows it, then forget it. Errors are those of
			// a unit systemd does not know, as the script ignores them.
			_ = sd.enable(ctx, u, false)
			_ = sd.job(ctx, "stop", u)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore %s: %w", r.ID(), err)
		}
		if !existed && !sandbox {
			if err := sd.reload(ctx); err != nil {
				return fmt.Errorf("restore %s: %w", r.ID(), err)
			}
			_ = sd.conn.ResetFailedUnitContext(ctx, u)
		}
		if !existed {
			return nil
		}
	}
	if sandbox {
		return nil
	}
	if err := sd.reload(ctx); err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	switch {
	case isEnabled(snapshot.Fields["enabled"]):
		err = sd.enable(ctx, u, true)
	case snapshot.Fields["enabled"] == "disabled":
		err = sd.enable(ctx, u, false)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	switch {
	case isRunning(snapshot.Fields["active"]) && changed:
		err = sd.job(ctx, "restart", u)
	case isRunning(snapshot.Fields["active"]):
		err = sd.job(ctx, "start", u)
	default:
		err = sd.job(ctx, "stop", u)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.ID(), err)
	}
	return nil
}

// writeUnitNative writes a unit file in process, making its folder (a
// sandbox root or a minimal host may lack it).
func writeUnitNative(ctx context.Context, h *Host, r config.Resource, data []byte) error {
	dir, err := hostPath(h.Root(), filepath.Dir(unitPath(r.Name)))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if _, err := NewLocal(h.Root()).WriteFiles(ctx, []FileWrite{{Path: unitPath(r.Name), Data: data, Mode: 0o644}}); err != nil {
		return fmt.Errorf("write unit file: %w", err)
	}
	return nil
}

// systemd is the host's systemd manager over D-Bus.
type systemd struct{ conn *sddbus.Conn }

// systemd returns the host's connection to systemd, opened on first use
// the way systemctl connects (the system bus, else systemd's private
// socket for root) and closed with the Host.
func (h *Host) systemd() (*systemd, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bus != nil {
		return h.bus, nil
	}
	if err := systemdRunning(); err != nil {
		return nil, err
	}
	// The connection lives as long as the Host, not as one step's context.
	conn, err := sddbus.NewWithContext(context.Background())
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	h.bus = &systemd{conn: conn}
	h.closers = append(h.closers, conn.Close)
	return h.bus, nil
}

// reload is systemctl daemon-reload.
func (s *systemd) reload(ctx context.Context) error {
	if err := s.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

// enable is systemctl enable or disable: the unit file's links, then a
// daemon-reload, as systemctl does after changing them.
func (s *systemd) enable(ctx context.Context, unit string, on bool) error {
	var err error
	if on {
		_, _, err = s.conn.EnableUnitFilesContext(ctx, []string{unit}, false, false)
	} else {
		_, err = s.conn.DisableUnitFilesContext(ctx, []string{unit}, false)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", map[bool]string{true: "enable", false: "disable"}[on], unit, err)
	}
	return s.reload(ctx)
}

// active is systemctl is-active: active or reloading.
func (s *systemd) active(ctx context.Context, unit string) (bool, error) {
	p, err := s.conn.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return false, fmt.Errorf("state of %s: %w", unit, err)
	}
	v, _ := p.Value.Value().(string)
	return v == "active" || v == "reloading" || v == "refreshing", nil
}

// job is systemctl start, stop, restart, try-restart or reload: the job
// queued in mode "replace" and waited for.
func (s *systemd) job(ctx context.Context, verb, unit string) error {
	queue := map[string]func(context.Context, string, string, chan<- string) (int, error){
		"start": s.conn.StartUnitContext, "stop": s.conn.StopUnitContext, "restart": s.conn.RestartUnitContext,
		"try-restart": s.conn.TryRestartUnitContext, "reload": s.conn.ReloadUnitContext,
	}[verb]
	done := make(chan string, 1)
	if _, err := queue(ctx, unit, "replace", done); err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("%s %s: job %s (see systemctl status %s and journalctl -u %s)", verb, unit, res, unit, unit)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", verb, unit, ctx.Err())
	}
}

// systemdRunning is systemctl's own test that systemd is the host's init:
// its runtime folder exists.
func systemdRunning() error {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return errors.New("systemd is not running on this host")
	}
	return nil
}
