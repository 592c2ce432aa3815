// Command app is the tiny HTTP service the end-to-end test deploys as an
// artifact. It answers /healthz with the content of the file "version"
// beside its executable, with the HTTP status held in the file "status"
// (200 when absent). Both are read once at start, so a new release only
// shows once the service was restarted, as a real service behaves.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	flag.Parse()
	exe, err := os.Executable()
	if err != nil {
		log.Fatalf("find own executable: %v", err)
	}
	dir := filepath.Dir(exe)
	version := readFile(filepath.Join(dir, "version"), "unknown")
	status, err := strconv.Atoi(readFile(filepath.Join(dir, "status"), "200"))
	if err != nil {
		log.Fatalf("read status: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintln(w, version)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// readFile returns the trimmed content of path, or def when it cannot be read.
func readFile(path, def string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	return strings.TrimSpace(string(b))
}
