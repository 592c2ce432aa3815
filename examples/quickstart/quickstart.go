// Package quickstart embeds the bundled example repository, so that
// `driftless demo` runs with no setup and no file outside the binary.
package quickstart

import (
	"embed"
	"io/fs"
)

//go:embed environments roles files
var files embed.FS

// Files returns the example repository: environments/, roles/ and files/.
func Files() fs.FS { return files }
