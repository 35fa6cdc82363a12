// gotar lists a tar stream read from stdin with Go's archive/tar, the reader the Go
// sp2p receiver uses: one JSON object per member, then the count of bytes left after
// the end-of-archive marker (a Go receiver fails on any). Standard library only.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

type entry struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Mode   int64  `json:"mode"`
	Mtime  int64  `json:"mtime"`
	SHA256 string `json:"sha256"`
}

func main() {
	tr := tar.NewReader(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "gotar:", err)
			os.Exit(1)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			fmt.Fprintln(os.Stderr, "gotar:", err)
			os.Exit(1)
		}
		enc.Encode(entry{h.Name, string(rune(h.Typeflag)), h.Size, h.Mode, h.ModTime.Unix(),
			hex.EncodeToString(sum.Sum(nil))})
	}
	rest, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotar:", err)
		os.Exit(1)
	}
	fmt.Printf("{\"trailing\": %d}\n", len(rest))
}
