package feedback

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// request is one request a fake Git host received.
type request struct {
	Method, Path, RawURI string
	Header               http.Header
	Body                 map[string]any
}

// fakeHost answers as GitHub's documented REST API does for the calls
// feedback makes, and records what it received. failures makes the next N
// requests on a "METHOD path" answer 500, to exercise the retries.
type fakeHost struct {
	t      testing.TB
	prefix string

	mu       sync.Mutex
	requests []request
	failures map[string]int
	failCode map[string]int
	nextID   int64
	// comments per issue number, in order; deployments in creation order.
	comments    map[int][]map[string]any
	deployments []map[string]any
	// pulls are the pull request numbers associated with a commit.
	pulls map[string][]int
}

func newFakeGitHub(t testing.TB, prefix string) (*fakeHost, *httptest.Server) {
	f := &fakeHost{t: t, prefix: prefix, failures: map[string]int{}, failCode: map[string]int{}, nextID: 1000, comments: map[int][]map[string]any{}, pulls: map[string][]int{}}
	mux := http.NewServeMux()
	p := prefix
	mux.HandleFunc("POST "+p+"/repos/{o}/{r}/statuses/{sha}", func(w http.ResponseWriter, r *http.Request) {
		body := f.record(r)
		body["id"] = f.id()
		writeJSON(w, http.StatusCreated, body)
	})
	mux.HandleFunc("GET "+p+"/repos/{o}/{r}/deployments", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []map[string]any{}
		// GitHub lists the newest first.
		for i := len(f.deployments) - 1; i >= 0; i-- {
			d := f.deployments[i]
			if q := r.URL.Query().Get("sha"); q != "" && d["sha"] != q {
				continue
			}
			if q := r.URL.Query().Get("environment"); q != "" && d["environment"] != q {
				continue
			}
			out = append(out, d)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST "+p+"/repos/{o}/{r}/deployments", func(w http.ResponseWriter, r *http.Request) {
		body := f.record(r)
		d := map[string]any{"id": f.id(), "sha": body["ref"], "ref": body["ref"], "environment": body["environment"], "task": body["task"]}
		f.mu.Lock()
		f.deployments = append(f.deployments, d)
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, d)
	})
	mux.HandleFunc("POST "+p+"/repos/{o}/{r}/deployments/{id}/statuses", func(w http.ResponseWriter, r *http.Request) {
		body := f.record(r)
		body["id"] = f.id()
		writeJSON(w, http.StatusCreated, body)
	})
	// "List pull requests associated with a commit".
	mux.HandleFunc("GET "+p+"/repos/{o}/{r}/commits/{sha}/pulls", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		f.mu.Lock()
		out := []map[string]any{}
		for _, n := range f.pulls[r.PathValue("sha")] {
			out = append(out, map[string]any{"number": n, "state": "closed", "merged_at": "2026-12-02T10:00:00Z"})
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET "+p+"/repos/{o}/{r}/issues/{n}/comments", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		n, _ := strconv.Atoi(r.PathValue("n"))
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if per <= 0 {
			per = 30
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		page = max(page, 1)
		f.mu.Lock()
		all := f.comments[n]
		f.mu.Unlock()
		lo, hi := min((page-1)*per, len(all)), min(page*per, len(all))
		if hi < len(all) {
			next := *r.URL
			next.Scheme, next.Host = "http", r.Host
			q := next.Query()
			q.Set("page", strconv.Itoa(page+1))
			next.RawQuery = q.Encode()
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, next.String()))
		}
		writeJSON(w, http.StatusOK, all[lo:hi])
	})
	mux.HandleFunc("POST "+p+"/repos/{o}/{r}/issues/{n}/comments", func(w http.ResponseWriter, r *http.Request) {
		body := f.record(r)
		n, _ := strconv.Atoi(r.PathValue("n"))
		c := map[string]any{"id": f.id(), "body": body["body"]}
		f.mu.Lock()
		f.comments[n] = append(f.comments[n], c)
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, c)
	})
	mux.HandleFunc("PATCH "+p+"/repos/{o}/{r}/issues/comments/{id}", func(w http.ResponseWriter, r *http.Request) {
		body := f.record(r)
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, cs := range f.comments {
			for _, c := range cs {
				if c["id"] == id {
					c["body"] = body["body"]
					writeJSON(w, http.StatusOK, c)
					return
				}
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		f.mu.Lock()
		fail, code := f.failures[key] > 0, f.failCode[key]
		if fail {
			f.failures[key]--
		}
		f.mu.Unlock()
		if fail {
			f.record(r)
			writeJSON(w, code, map[string]any{"message": http.StatusText(code)})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// addComment stores a comment as if someone had written it.
func (f *fakeHost) addComment(n int, body string) int64 {
	id := f.id()
	f.mu.Lock()
	f.comments[n] = append(f.comments[n], map[string]any{"id": id, "body": body})
	f.mu.Unlock()
	return id
}

func (f *fakeHost) id() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	return f.nextID
}

func (f *fakeHost) record(r *http.Request) map[string]any {
	body := map[string]any{}
	if data, _ := io.ReadAll(r.Body); len(data) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			f.t.Errorf("%s %s: body is not a JSON object: %v", r.Method, r.URL.Path, err)
		}
	}
	f.mu.Lock()
	// The handlers add fields to body for their answer: keep the request's own copy.
	f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, RawURI: r.RequestURI, Header: r.Header.Clone(), Body: maps.Clone(body)})
	f.mu.Unlock()
	return body
}

// got returns the recorded requests whose "METHOD path" contains pattern.
func (f *fakeHost) got(pattern string) []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.requests {
		if strings.Contains(r.Method+" "+r.Path, pattern) {
			out = append(out, r)
		}
	}
	return out
}

// failNext makes the next n requests on key answer code.
func (f *fakeHost) failNext(key string, n, code int) {
	f.mu.Lock()
	f.failures[key], f.failCode[key] = n, code
	f.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
