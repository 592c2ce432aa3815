package targets

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The archive formats the artifact driver unpacks.
const (
	FormatTar   = "tar"
	FormatTarGz = "tar.gz"
	FormatZip   = "zip"
)

// maxSymlinkTarget bounds a zip symlink's body: a link target longer than
// this is not a link target but an attempt to make us read a large entry.
const maxSymlinkTarget = 4096

// ErrUnsafeArchive is wrapped by every refusal of an archive entry, so a
// caller can tell a hostile or broken archive from an I/O failure.
var ErrUnsafeArchive = errors.New("unsafe archive")

// entrySink receives the entries an archive check accepted, in the
// archive's order: the daemon's check reads them and keeps nothing
// (discardEntries), the host's unpack writes them (extractor).
type entrySink interface {
	dir(name string, mode int64, mtime time.Time) error
	file(name string, mode int64, mtime time.Time, size int64, body io.Reader) error
	symlink(name, target string, mtime time.Time) error
	hardlink(name, target string) error
}

// archiveCheck checks archive entries one by one and hands the accepted
// ones to its sink. The rules are the same on the daemon (before anything
// reaches the host) and on the host (while unpacking into a hidden
// folder, removed when an entry is refused).
type archiveCheck struct {
	max   int64 // bound of the unpacked size
	total int64
	kinds map[string]byte // accepted entry name -> tar type
	links []archiveLink   // the symlinks, in the archive's order
	sink  entrySink
}

type archiveLink struct{ name, target string }

func unsafeEntry(name, why string) error {
	return fmt.Errorf("%w: entry %q %s", ErrUnsafeArchive, name, why)
}

// cleanEntryName returns the entry's name relative to the destination, or
// "" for the destination itself. It refuses absolute names and any ".."
// component before cleaning, so that "a/../../b" cannot sneak through.
func cleanEntryName(raw string) (string, error) {
	if strings.ContainsRune(raw, 0) {
		return "", unsafeEntry(raw, "has a NUL byte")
	}
	if strings.HasPrefix(raw, "/") {
		return "", unsafeEntry(raw, "has an absolute path")
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", unsafeEntry(raw, "has a .. component")
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	return name, nil
}

// checkParents refuses an entry below something that is not a directory:
// a file, or a symlink the unpack would follow out of the destination.
func (n *archiveCheck) checkParents(name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if k, ok := n.kinds[dir]; ok && k != tar.TypeDir {
			return unsafeEntry(name, fmt.Sprintf("lies below %q, which is not a directory", dir))
		}
	}
	return nil
}

// add accepts one entry. body is read only for regular files.
func (n *archiveCheck) add(raw string, typ byte, mode int64, link string, size int64, mtime time.Time, body io.Reader) error {
	name, err := cleanEntryName(raw)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the destination itself
	}
	if err := n.checkParents(name); err != nil {
		return err
	}
	if prev, ok := n.kinds[name]; ok && (prev != tar.TypeDir || typ != tar.TypeDir) {
		return unsafeEntry(name, "appears twice")
	}
	switch typ {
	case tar.TypeDir, tar.TypeReg:
	case tar.TypeSymlink:
		if link == "" || strings.HasPrefix(link, "/") || strings.ContainsRune(link, 0) {
			return unsafeEntry(name, fmt.Sprintf("is a symlink to %q, outside the destination", link))
		}
		if t := path.Join(path.Dir(name), link); t == ".." || strings.HasPrefix(t, "../") {
			return unsafeEntry(name, fmt.Sprintf("is a symlink to %q, outside the destination", link))
		}
	case tar.TypeLink:
		target, err := cleanEntryName(link)
		if err != nil || target == "" {
			return unsafeEntry(name, fmt.Sprintf("is a hard link to %q, outside the destination", link))
		}
		if n.kinds[target] != tar.TypeReg {
			return unsafeEntry(name, fmt.Sprintf("is a hard link to %q, which is not an earlier regular file", link))
		}
		link = target
	default:
		return unsafeEntry(name, fmt.Sprintf("has unsupported type %q (only files, directories and links)", typ))
	}
	if typ == tar.TypeReg {
		if size < 0 {
			return unsafeEntry(name, "has a negative size")
		}
		n.total += size
		if n.total > n.max {
			return fmt.Errorf("%w: unpacked size exceeds %d bytes", ErrUnsafeArchive, n.max)
		}
	}
	n.kinds[name] = typ
	// Parents the archive never listed are made as folders: record them,
	// so that a later entry cannot turn one into a file or a symlink.
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := n.kinds[dir]; !ok {
			n.kinds[dir] = tar.TypeDir
		}
	}
	mode &= 0o777
	switch typ {
	case tar.TypeDir:
		return n.sink.dir(name, mode, mtime)
	case tar.TypeReg:
		return n.sink.file(name, mode, mtime, size, body)
	case tar.TypeSymlink:
		n.links = append(n.links, archiveLink{name, link})
		return n.sink.symlink(name, link, mtime)
	}
	return n.sink.hardlink(name, link)
}

// maxLinkDepth bounds how many links deep a link's resolution goes, as
// the kernel's 40: deeper, the unpacked link could not be used anyway.
const maxLinkDepth = 40

// linkNode is one entry of the archive's namespace, as the unpacked
// folder has it.
type linkNode struct {
	parent   *linkNode // nil for the destination itself
	children map[string]*linkNode
	target   string // a symlink's target, "" for a folder or a file
	state    int8   // of a symlink's resolution: linkUnresolved...
	to       linkPlace
}

const (
	linkUnresolved int8 = iota
	linkResolving
	linkResolved
)

// linkPlace is a place inside the destination: an entry of the archive
// (or the destination itself) and how many components below it the
// archive does not have.
type linkPlace struct {
	node  *linkNode
	extra int
}

var (
	errLinkOut  = errors.New("resolves outside the destination through the archive's links")
	errLinkLoop = fmt.Errorf("resolves through a loop of links or more than %d links deep", maxLinkDepth)
)

// checkLinks resolves every symlink of the archive as the kernel will
// once it is unpacked: component by component, a component that is a
// symlink of the archive replaced by where that link leads. Each link
// stays inside on its own ("y -> ." and "x -> y/.."), yet together x is
// the destination's parent: a link that leaves the destination at any
// step is refused, and so is one through a loop. A link to what the
// archive does not have is resolved lexically from there on. Each link
// is resolved once, so the cost is the links' total length.
func (n *archiveCheck) checkLinks() error {
	if len(n.links) == 0 {
		return nil
	}
	nodes := map[string]*linkNode{"": {}}
	var node func(name string) *linkNode
	node = func(name string) *linkNode {
		if nd, ok := nodes[name]; ok {
			return nd
		}
		dir := path.Dir(name)
		if dir == "." {
			dir = ""
		}
		parent := node(dir)
		nd := &linkNode{parent: parent}
		if parent.children == nil {
			parent.children = map[string]*linkNode{}
		}
		parent.children[path.Base(name)] = nd
		nodes[name] = nd
		return nd
	}
	for name := range n.kinds {
		node(name)
	}
	for _, l := range n.links {
		nodes[l.name].target = l.target
	}
	for _, l := range n.links {
		if _, err := resolveLink(nodes[l.name], 0); err != nil {
			return unsafeEntry(l.name, fmt.Sprintf("is a symlink to %q, which %v", l.target, err))
		}
	}
	return nil
}

// resolveLink returns where the symlink nd leads, resolving the links of
// the archive its target goes through (depth of them so far).
func resolveLink(nd *linkNode, depth int) (linkPlace, error) {
	switch nd.state {
	case linkResolved:
		return nd.to, nil
	case linkResolving:
		return linkPlace{}, errLinkLoop
	}
	if depth > maxLinkDepth {
		return linkPlace{}, errLinkLoop
	}
	nd.state = linkResolving
	at := linkPlace{node: nd.parent}
	for _, c := range strings.Split(nd.target, "/") {
		switch {
		case c == "" || c == ".":
		case c == "..":
			switch {
			case at.extra > 0:
				at.extra--
			case at.node.parent == nil:
				return linkPlace{}, errLinkOut
			default:
				at.node = at.node.parent
			}
		case at.extra > 0:
			at.extra++
		default:
			child := at.node.children[c]
			switch {
			case child == nil:
				at.extra = 1
			case child.target != "":
				to, err := resolveLink(child, depth+1)
				if err != nil {
					return linkPlace{}, err
				}
				at = to
			default:
				at.node = child
			}
		}
	}
	nd.state, nd.to = linkResolved, at
	return at, nil
}

// checkArchive checks every entry of the archive in r (size bytes, of
// the given format) and hands the accepted ones to sink: relative names
// without "..", directories, regular files, and links that stay inside,
// on their own and through each other (checked once all entries are
// in, so a sink that writes must not use what it wrote before this
// returns nil). Any unsafe entry stops the check with an error wrapping
// ErrUnsafeArchive. maxBytes bounds the unpacked size, which defends
// against decompression bombs.
func checkArchive(r io.ReaderAt, size int64, format string, maxBytes int64, sink entrySink) error {
	n := &archiveCheck{max: maxBytes, kinds: map[string]byte{}, sink: sink}
	var err error
	switch format {
	case FormatZip:
		err = n.addZip(r, size)
	case FormatTarGz:
		gz, gerr := gzip.NewReader(bufio.NewReader(io.NewSectionReader(r, 0, size)))
		if gerr != nil {
			return fmt.Errorf("%w: read gzip: %v", ErrUnsafeArchive, gerr)
		}
		err = n.addTar(gz)
	case FormatTar:
		err = n.addTar(bufio.NewReader(io.NewSectionReader(r, 0, size)))
	default:
		return fmt.Errorf("unknown archive format %q", format)
	}
	if err != nil {
		return err
	}
	return n.checkLinks()
}

// discardEntries is the daemon's sink: every body is read (a corrupt
// entry fails here, before anything reaches the host) and dropped.
type discardEntries struct{}

func (discardEntries) dir(string, int64, time.Time) error { return nil }

func (discardEntries) file(name string, _ int64, _ time.Time, size int64, body io.Reader) error {
	if _, err := io.CopyN(io.Discard, body, size); err != nil {
		return fmt.Errorf("read entry %q: %w", name, err)
	}
	return nil
}

func (discardEntries) symlink(string, string, time.Time) error { return nil }

func (discardEntries) hardlink(string, string) error { return nil }

func (n *archiveCheck) addTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %v", ErrUnsafeArchive, err)
		}
		typ := h.Typeflag
		// (tar.Reader already reads the old TypeRegA as TypeReg.)
		if typ == tar.TypeXGlobalHeader {
			continue // pax metadata for the whole archive, not an entry
		}
		if err := n.add(h.Name, typ, h.Mode, h.Linkname, h.Size, h.ModTime, tr); err != nil {
			return err
		}
	}
}

func (n *archiveCheck) addZip(r io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("%w: read zip: %v", ErrUnsafeArchive, err)
	}
	for _, zf := range zr.File {
		if err := n.addZipEntry(zf); err != nil {
			return err
		}
	}
	return nil
}

func (n *archiveCheck) addZipEntry(zf *zip.File) error {
	mode := zf.Mode()
	perm := int64(mode.Perm())
	switch {
	case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
		return n.add(zf.Name, tar.TypeDir, perm|0o700, "", 0, zf.Modified, nil)
	case mode&os.ModeSymlink != 0:
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%w: open zip entry %q: %v", ErrUnsafeArchive, zf.Name, err)
		}
		target, err := io.ReadAll(io.LimitReader(rc, maxSymlinkTarget+1))
		rc.Close()
		if err != nil || len(target) > maxSymlinkTarget {
			return unsafeEntry(zf.Name, "has an unreadable or oversized symlink target")
		}
		return n.add(zf.Name, tar.TypeSymlink, perm, string(target), 0, zf.Modified, nil)
	case mode.IsRegular():
		if zf.UncompressedSize64 > uint64(n.max) {
			return fmt.Errorf("%w: unpacked size exceeds %d bytes", ErrUnsafeArchive, n.max)
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%w: open zip entry %q: %v", ErrUnsafeArchive, zf.Name, err)
		}
		defer rc.Close()
		// Zips made on systems without Unix modes carry none: default to rw-r--r--.
		if perm == 0 {
			perm = 0o644
		}
		return n.add(zf.Name, tar.TypeReg, perm, "", int64(zf.UncompressedSize64), zf.Modified, rc)
	}
	return unsafeEntry(zf.Name, fmt.Sprintf("has unsupported mode %v", mode))
}

// extractor is the host's sink: it writes the accepted entries under root,
// a fresh folder it made itself. Every name is relative, without "..",
// and below folders the extractor made (the check refuses an entry below
// a file or a link), so nothing it writes goes through a link; files are
// created exclusively and without following one all the same. Modes are
// set as tar sets them for root (the archive's permission bits, no
// umask); folders get theirs at the end, so that a read-only folder can
// still be filled.
type extractor struct {
	ctx  context.Context // ends the unpack between entries
	root string
	dirs []extractedDir
}

type extractedDir struct {
	path  string
	mode  fs.FileMode
	mtime time.Time
}

func (x *extractor) path(name string) string { return filepath.Join(x.root, filepath.FromSlash(name)) }

// parent makes the folders leading to name that the archive did not list.
func (x *extractor) parent(name string) error {
	if err := x.ctx.Err(); err != nil {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(x.path(name)), 0o777); err != nil {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	return nil
}

func (x *extractor) dir(name string, mode int64, mtime time.Time) error {
	if err := x.parent(name); err != nil {
		return err
	}
	p := x.path(name)
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	x.dirs = append(x.dirs, extractedDir{p, fs.FileMode(mode), mtime})
	return nil
}

func (x *extractor) file(name string, mode int64, mtime time.Time, size int64, body io.Reader) error {
	if err := x.parent(name); err != nil {
		return err
	}
	p := x.path(name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	_, err = io.CopyN(f, body, size)
	if err == nil {
		err = f.Chmod(fs.FileMode(mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(p, mtime, mtime)
	}
	if err != nil {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	return nil
}

func (x *extractor) symlink(name, target string, mtime time.Time) error {
	if err := x.parent(name); err != nil {
		return err
	}
	p := x.path(name)
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	if !mtime.IsZero() {
		ts := unix.NsecToTimespec(mtime.UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("unpack %q: %w", name, err)
		}
	}
	return nil
}

func (x *extractor) hardlink(name, target string) error {
	if err := x.parent(name); err != nil {
		return err
	}
	if err := os.Link(x.path(target), x.path(name)); err != nil {
		return fmt.Errorf("unpack %q: %w", name, err)
	}
	return nil
}

// finish gives the folders their modes and times.
func (x *extractor) finish() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	return nil
}
