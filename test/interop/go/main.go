// Interop check of bpfseal's tiled log against golang.org/x/mod/sumdb/tlog and sumdb/note, an
// independent implementation of RFC 6962 trees, tile paths (Tile.Path) and signed notes.
//
//	interop read <dir|http url> <log vkey> <indexes,...>   read a bpfseal log through tlog.TileHashReader
//	interop write <dir> <origin> <n>                       write a tiled log with tlog; prints the vkey
//	interop cosig <note file> <witness vkey>               check a cosignature/v1 line (c2sp.org/tlog-cosignature)
//
// Output is one JSON object on stdout; any failure exits 1 with the reason on stderr.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "interop: "+format+"\n", args...)
	os.Exit(1)
}

// c2spPath maps Go's "tile/8/L/N[.p/W]" to c2sp.org/tlog-tiles' "tile/L/N[.p/W]"; level -1 ("data")
// becomes "entries".
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	return "tile/" + strings.Replace(p, "data/", "entries/", 1)
}

type source struct{ base string }

func (s source) get(path string) ([]byte, error) {
	if strings.HasPrefix(s.base, "http://") || strings.HasPrefix(s.base, "https://") {
		resp, err := http.Get(strings.TrimSuffix(s.base, "/") + "/" + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<25))
	}
	return os.ReadFile(filepath.Join(s.base, path))
}

// tileReader serves tiles to tlog.TileHashReader, which authenticates them against the tree hash.
type tileReader struct {
	src   source
	reads int
}

func (r *tileReader) Height() int { return height }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		r.reads++
		data, err := r.src.get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// parseCheckpoint reads the three lines of a c2sp.org/tlog-checkpoint body.
func parseCheckpoint(text string) (origin string, tree tlog.Tree) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		fail("checkpoint has %d lines", len(lines))
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint root: %v", err)
	}
	return lines[0], tlog.Tree{N: n, Hash: h}
}

// bundleEntry returns entry i from its entry bundle (uint16 length-prefixed entries).
func bundleEntry(src source, tree tlog.Tree, i int64) []byte {
	n := i / 256
	w := tree.N - n*256
	if w > 256 {
		w = 256
	}
	t := tlog.Tile{H: height, L: -1, N: n, W: int(w)}
	data, err := src.get(c2spPath(t))
	if err != nil {
		fail("bundle: %v", err)
	}
	for k := int64(0); ; k++ {
		if len(data) < 2 {
			fail("bundle %s ends before entry %d", c2spPath(t), i)
		}
		l := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+l {
			fail("bundle %s is truncated", c2spPath(t))
		}
		if k == i-n*256 {
			return data[2 : 2+l]
		}
		data = data[2+l:]
	}
}

func read(base, vkey, indexes string) {
	src := source{base}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	raw, err := src.get("checkpoint")
	if err != nil {
		fail("checkpoint: %v", err)
	}
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		fail("checkpoint does not verify: %v", err)
	}
	origin, tree := parseCheckpoint(n.Text)
	tr := &tileReader{src: src}
	hr := tlog.TileHashReader(tree, tr)
	th, err := tlog.TreeHash(tree.N, hr)
	if err != nil || th != tree.Hash {
		fail("tree hash from tiles: %v (%v vs %v)", err, th, tree.Hash)
	}
	checked := 0
	for _, s := range strings.Split(indexes, ",") {
		i, _ := strconv.ParseInt(s, 10, 64)
		p, err := tlog.ProveRecord(tree.N, i, hr)
		if err != nil {
			fail("prove %d: %v", i, err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, tlog.RecordHash(bundleEntry(src, tree, i))); err != nil {
			fail("entry %d: %v", i, err)
		}
		old := i + 1
		tp, err := tlog.ProveTree(tree.N, old, hr)
		if err != nil {
			fail("tree proof %d: %v", old, err)
		}
		oh, err := tlog.TreeHash(old, hr)
		if err != nil {
			fail("tree hash %d: %v", old, err)
		}
		if err := tlog.CheckTree(tp, tree.N, tree.Hash, old, oh); err != nil {
			fail("consistency %d -> %d: %v", old, tree.N, err)
		}
		checked++
	}
	out, _ := json.Marshal(map[string]interface{}{"origin": origin, "size": tree.N, "root": tree.Hash.String(), "checked": checked, "tileReads": tr.reads, "signatures": len(n.Sigs) + len(n.UnverifiedSigs)})
	fmt.Println(string(out))
}

type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = (*m)[x]
	}
	return out, nil
}

func writeFile(dir, path string, data []byte) {
	p := filepath.Join(dir, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		fail("%v", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		fail("%v", err)
	}
}

func write(dir, origin string, n int64) {
	hashes := &memHashes{}
	entries := make([][]byte, n)
	for i := int64(0); i < n; i++ {
		entries[i] = []byte(fmt.Sprintf("go entry %d", i))
		hs, err := tlog.StoredHashes(i, entries[i], hashes)
		if err != nil {
			fail("%v", err)
		}
		*hashes = append(*hashes, hs...)
	}
	for _, t := range tlog.NewTiles(height, 0, n) {
		data, err := tlog.ReadTileData(t, hashes)
		if err != nil {
			fail("%v", err)
		}
		writeFile(dir, c2spPath(t), data)
		if t.L == 0 {
			var b []byte
			for _, e := range entries[t.N*256 : t.N*256+int64(t.W)] {
				b = append(b, byte(len(e)>>8), byte(len(e)))
				b = append(b, e...)
			}
			writeFile(dir, c2spPath(tlog.Tile{H: height, L: -1, N: t.N, W: t.W}), b)
		}
	}
	root, err := tlog.TreeHash(n, hashes)
	if err != nil {
		fail("%v", err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		fail("%v", err)
	}
	signer, _ := note.NewSigner(skey)
	msg, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", origin, n, root)}, signer)
	if err != nil {
		fail("%v", err)
	}
	writeFile(dir, "checkpoint", msg)
	out, _ := json.Marshal(map[string]interface{}{"vkey": vkey, "size": n, "root": root.String()})
	fmt.Println(string(out))
}

// cosig checks one cosignature/v1 line by hand: key ID = SHA-256(name || "\n" || 0x04 || key)[:4],
// signature = u64 timestamp || Ed25519 over "cosignature/v1\ntime <t>\n" || note text.
func cosig(file, vkey string) {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3) // base64 may contain "+"
	if len(parts) != 3 {
		fail("bad vkey")
	}
	key, _ := base64.StdEncoding.DecodeString(parts[2])
	if len(key) != 33 || key[0] != 0x04 {
		fail("not a cosignature/v1 vkey")
	}
	id := sha256.Sum256(append([]byte(parts[0]+"\n"), key...))
	raw, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	s := string(raw)
	split := strings.LastIndex(s, "\n\n")
	text, sigs := s[:split+1], s[split+2:]
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		f := strings.Split(line, " ")
		if len(f) != 3 || f[1] != parts[0] {
			continue
		}
		b, _ := base64.StdEncoding.DecodeString(f[2])
		if len(b) != 4+8+64 || string(b[:4]) != string(id[:4]) {
			continue
		}
		ts := binary.BigEndian.Uint64(b[4:12])
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)
		if !ed25519.Verify(ed25519.PublicKey(key[1:]), []byte(msg), b[12:]) {
			fail("cosignature by %s does not verify", parts[0])
		}
		out, _ := json.Marshal(map[string]interface{}{"witness": parts[0], "timestamp": ts})
		fmt.Println(string(out))
		return
	}
	fail("no cosignature by %s", parts[0])
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: interop read|write|cosig ...")
	}
	switch os.Args[1] {
	case "read":
		read(os.Args[2], os.Args[3], os.Args[4])
	case "write":
		n, _ := strconv.ParseInt(os.Args[4], 10, 64)
		write(os.Args[2], os.Args[3], n)
	case "cosig":
		cosig(os.Args[2], os.Args[3])
	default:
		fail("unknown command %s", os.Args[1])
	}
}
