package api

import (
	"net/http"
	"regexp"

	"github.com/driftless/driftless/reconciler/status"
)

// pulledName is a host name as environments write it.
var pulledName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// maxPulledEnvs bounds the environments one report may carry.
const maxPulledEnvs = 256

// pulled serves GET /api/v1/pulled: the newest report of each pull-mode host.
func (a *API) pulled(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.pulledHosts())
}

func (a *API) pulledHosts() []status.PulledHost {
	if a.opts.Pulled == nil {
		return []status.PulledHost{}
	}
	return a.opts.Pulled.List()
}

// report serves POST /api/v1/pulled/{host}: a pull-mode host's state, kept
// until its next report.
func (a *API) report(w http.ResponseWriter, r *http.Request, who string) {
	host := r.PathValue("host")
	if a.opts.Pulled == nil {
		writeError(w, http.StatusNotFound, "this daemon keeps no pull-mode reports")
		return
	}
	if !pulledName.MatchString(host) {
		writeError(w, http.StatusBadRequest, "%q is not a host name (letters, digits, '.', '_' and '-')", host)
		return
	}
	var rep status.PulledHost
	if !readBody(w, r, &rep, `{"host": "<this host>", "environments": [...]}`) {
		return
	}
	if rep.Host != host {
		writeError(w, http.StatusBadRequest, "the report's host %q is not %q, the host of its path", rep.Host, host)
		return
	}
	if len(rep.Environments) > maxPulledEnvs {
		writeError(w, http.StatusBadRequest, "a report carries at most %d environments", maxPulledEnvs)
		return
	}
	rep.Received = a.now()
	if err := a.opts.Pulled.Put(rep); err != nil {
		writeError(w, http.StatusInsufficientStorage, "keep the report: %v", err)
		return
	}
	a.log.Debug().Str("host", host).Str("by", who).Int("environments", len(rep.Environments)).Msg("pull-mode host reported")
	w.WriteHeader(http.StatusNoContent)
}
