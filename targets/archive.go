package targets

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
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

// normaliser checks archive entries one by one and writes the accepted ones
// into a plain tar.gz that the host only has to unpack. Because the host
// receives nothing until every entry has been accepted, a refused archive
// extracts nothing at all.
type normaliser struct {
	max   int64 // bound of the unpacked size
	total int64
	kinds map[string]byte // accepted entry name -> tar type
	tw    *tar.Writer
	gz    *gzip.Writer
	out   bytes.Buffer
}

func newNormaliser(maxBytes int64) *normaliser {
	n := &normaliser{max: maxBytes, kinds: map[string]byte{}}
	// Speed matters more than ratio here: the stream crosses a LAN or a
	// loopback, and the host spends less time inflating a fast-level stream.
	n.gz, _ = gzip.NewWriterLevel(&n.out, gzip.BestSpeed)
	n.tw = tar.NewWriter(n.gz)
	return n
}

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
// a file, or a symlink the host's tar would follow out of the destination.
func (n *normaliser) checkParents(name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if k, ok := n.kinds[dir]; ok && k != tar.TypeDir {
			return unsafeEntry(name, fmt.Sprintf("lies below %q, which is not a directory", dir))
		}
	}
	return nil
}

// add accepts one entry. body is read only for regular files.
func (n *normaliser) add(raw string, typ byte, mode int64, link string, size int64, mtime time.Time, body io.Reader) error {
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
	hdr := &tar.Header{Name: name, Typeflag: typ, Mode: mode & 0o777, ModTime: mtime, Format: tar.FormatPAX}
	switch typ {
	case tar.TypeDir:
		hdr.Name += "/"
	case tar.TypeReg:
		if size < 0 {
			return unsafeEntry(name, "has a negative size")
		}
		n.total += size
		if n.total > n.max {
			return fmt.Errorf("%w: unpacked size exceeds %d bytes", ErrUnsafeArchive, n.max)
		}
		hdr.Size = size
	case tar.TypeSymlink:
		if link == "" || strings.HasPrefix(link, "/") || strings.ContainsRune(link, 0) {
			return unsafeEntry(name, fmt.Sprintf("is a symlink to %q, outside the destination", link))
		}
		if t := path.Join(path.Dir(name), link); t == ".." || strings.HasPrefix(t, "../") {
			return unsafeEntry(name, fmt.Sprintf("is a symlink to %q, outside the destination", link))
		}
		hdr.Linkname = link
	case tar.TypeLink:
		target, err := cleanEntryName(link)
		if err != nil || target == "" {
			return unsafeEntry(name, fmt.Sprintf("is a hard link to %q, outside the destination", link))
		}
		if n.kinds[target] != tar.TypeReg {
			return unsafeEntry(name, fmt.Sprintf("is a hard link to %q, which is not an earlier regular file", link))
		}
		hdr.Linkname = target
	default:
		return unsafeEntry(name, fmt.Sprintf("has unsupported type %q (only files, directories and links)", typ))
	}
	n.kinds[name] = typ
	// Parents the archive never listed are created by the host's tar as
	// directories: record them, so that a later entry cannot turn one into
	// a file or a symlink.
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := n.kinds[dir]; !ok {
			n.kinds[dir] = tar.TypeDir
		}
	}
	if err := n.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write normalised entry %q: %w", name, err)
	}
	if typ == tar.TypeReg {
		if _, err := io.CopyN(n.tw, body, size); err != nil {
			return fmt.Errorf("read entry %q: %w", name, err)
		}
	}
	return nil
}

// finish closes the normalised stream and returns it.
func (n *normaliser) finish() ([]byte, error) {
	if err := n.tw.Close(); err != nil {
		return nil, fmt.Errorf("close normalised tar: %w", err)
	}
	if err := n.gz.Close(); err != nil {
		return nil, fmt.Errorf("close normalised gzip: %w", err)
	}
	return n.out.Bytes(), nil
}

// normaliseArchive validates every entry of the archive in f and returns
// a gzip-compressed tar holding only safe entries: relative names without
// "..", directories, regular files, and links that stay inside. Any unsafe
// entry refuses the whole archive. maxBytes bounds the unpacked size, which
// defends against decompression bombs.
func normaliseArchive(f *os.File, format string, maxBytes int64) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind archive: %w", err)
	}
	n := newNormaliser(maxBytes)
	var err error
	switch format {
	case FormatZip:
		err = n.addZip(f)
	case FormatTarGz:
		gz, gerr := gzip.NewReader(bufio.NewReader(f))
		if gerr != nil {
			return nil, fmt.Errorf("%w: read gzip: %v", ErrUnsafeArchive, gerr)
		}
		err = n.addTar(gz)
	case FormatTar:
		err = n.addTar(bufio.NewReader(f))
	default:
		err = fmt.Errorf("unknown archive format %q", format)
	}
	if err != nil {
		return nil, err
	}
	return n.finish()
}

func (n *normaliser) addTar(r io.Reader) error {
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

func (n *normaliser) addZip(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat archive: %w", err)
	}
	zr, err := zip.NewReader(f, st.Size())
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

func (n *normaliser) addZipEntry(zf *zip.File) error {
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
