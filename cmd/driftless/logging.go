package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// isTerminal reports whether f is a terminal: a character device other
// than the null device, which is one too but where nobody reads colours.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

// newLogger logs JSON, or human-readable lines when w is a terminal.
func newLogger(w io.Writer, console bool, level string) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		l, err := zerolog.ParseLevel(level)
		if err != nil {
			return zerolog.Nop(), err
		}
		lvl = l
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
