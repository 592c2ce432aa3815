package hosts

import "fmt"

// aptRepo is the lab's flat apt repository, served from the root namespace.
type aptRepo struct {
	dir  string
	port int
}

// sourcesList is the sources.list every host gets: the lab's repository
// when one is served, otherwise nothing (hosts have no route out).
func (l *Lab) sourcesList() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.apt == nil {
		return "# no repository: test hosts have no route out\n"
	}
	return fmt.Sprintf("deb [trusted=yes] http://%s:%d ./\n", l.BridgeIP, l.apt.port)
}
