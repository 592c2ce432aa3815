package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/driftless/driftless/targets"
)

// firewall prints what the firewall probe prints (targets.FirewallProbe):
// "absent", or the driftless table as nft's JSON, the text mark and the
// table as nft's text. The table is listed once per batch, however many
// firewall resources it holds: three nft calls per host, not per resource.
func (o *observer) firewall() ([]byte, error) {
	if o.fwDone {
		return o.fw, o.fwErr
	}
	o.fwDone = true
	o.fw, o.fwErr = listFirewall(o.ctx)
	return o.fw, o.fwErr
}

func listFirewall(ctx context.Context) ([]byte, error) {
	tables, err := exec.CommandContext(ctx, "nft", "list", "tables").CombinedOutput()
	if err != nil {
		return nil, nftErr(err, tables)
	}
	if !bytes.Contains(append([]byte("\n"), tables...), []byte("\ntable inet driftless\n")) {
		return []byte("absent\n"), nil
	}
	js, err := nftOut(ctx, "-j", "list", "table", "inet", "driftless")
	if err != nil {
		return nil, err
	}
	text, err := nftOut(ctx, "list", "table", "inet", "driftless")
	if err != nil {
		return nil, err
	}
	out := append(js, "\n"+targets.FirewallTextMark+"\n"...)
	return append(out, text...), nil
}

func nftOut(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nft", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nftErr(err, stderr.Bytes())
	}
	return out, nil
}

// nftErr is nft's failure with what it said, as the probe reports it.
func nftErr(err error, said []byte) error {
	if s := strings.TrimSpace(string(said)); s != "" {
		return errors.New(s)
	}
	return fmt.Errorf("nft: %w", err)
}
