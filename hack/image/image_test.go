package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// These tests run the command as `make image` does, once, and inspect what
// it wrote the way docker load and a container runtime would.

const (
	testVersion  = "v0.0.0-test.1"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testCreated  = 1767225600 // 2026-01-01T00:00:00Z
)

// built is the output of one run of the command.
type built struct {
	dir     string
	archive string
	layout  string
	stdout  string
}

var (
	buildOnce sync.Once
	buildOut  built
	errBuild  error
)

// moduleRoot is the signet module, two levels up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// buildImage runs the command into dir with the test's labels.
func buildImage(ctx context.Context, root, dir string) (built, error) {
	b := built{dir: dir, archive: filepath.Join(dir, "signet.tar"), layout: filepath.Join(dir, "oci")}
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{
		"-C", root, "-o", b.archive, "-oci-layout", b.layout, "-version", testVersion,
		"-revision", testRevision, "-created", "1767225600",
	}, &stdout, &stderr)
	if err != nil {
		return b, errors.New(err.Error() + "\n" + stderr.String())
	}
	b.stdout = stdout.String()
	return b, nil
}

// image builds the image once for all tests of the package.
func image(t *testing.T) built {
	t.Helper()
	root := moduleRoot(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signet-image-test-")
		if err != nil {
			errBuild = err
			return
		}
		buildOut, errBuild = buildImage(context.Background(), root, dir)
	})
	if errBuild != nil {
		t.Fatalf("building the image: %v", errBuild)
	}
	return buildOut
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildOut.dir != "" {
		_ = os.RemoveAll(buildOut.dir)
	}
	os.Exit(code)
}

func openArchive(t *testing.T) v1.Image {
	t.Helper()
	img, err := tarball.ImageFromPath(image(t).archive, nil)
	if err != nil {
		t.Fatalf("open %s: %v", image(t).archive, err)
	}
	return img
}

// TestConfig: the runtime contract of the image.
func TestConfig(t *testing.T) {
	t.Parallel()
	cf, err := openArchive(t).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/manager"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/manager] and no cmd", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root, the restricted pod security profile)", c.User)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	want := map[string]string{
		"org.opencontainers.image.title":    "signet",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testRevision,
		"org.opencontainers.image.source":   "https://github.com/signet-dev/signet",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if got := cf.Created.UTC().Unix(); got != testCreated {
		t.Errorf("created %v, want the -created time", cf.Created)
	}
	if len(cf.History) != 1 || !strings.Contains(cf.History[0].CreatedBy, "go build") {
		t.Errorf("history %+v, want the one go build step", cf.History)
	}
}

// layerFiles reads the only layer of img: its entries and the manager.
func layerFiles(t *testing.T, img v1.Image) (map[string]*tar.Header, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 (the manager alone)", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	files := map[string]*tar.Header{}
	var manager []byte
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = hdr
		if hdr.Name == "manager" {
			if manager, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return files, manager
}

// TestLayer: the manager is the only file, executable, static; no shell.
func TestLayer(t *testing.T) {
	t.Parallel()
	files, manager := layerFiles(t, openArchive(t))
	for _, sh := range []string{"bin/sh", "bin/bash", "bin/busybox"} {
		if _, ok := files[sh]; ok {
			t.Errorf("the image has a shell: %s", sh)
		}
	}
	if len(files) != 1 || files["manager"] == nil {
		t.Fatalf("layer holds %v, want only manager", slices.Sorted(maps.Keys(files)))
	}
	hdr := files["manager"]
	if hdr.Typeflag != tar.TypeReg || hdr.Mode&0o111 != 0o111 || hdr.Uid != 0 {
		t.Errorf("manager: type %c mode %o uid %d, want a regular root-owned file executable by all", hdr.Typeflag, hdr.Mode, hdr.Uid)
	}
	f, err := elf.NewFile(bytes.NewReader(manager))
	if err != nil {
		t.Fatalf("manager is not an ELF binary: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("manager asks for a dynamic loader; the image has none (build it with CGO_ENABLED=0)")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("manager has a symbol table; the build strips it (-ldflags=-s -w)")
	}
}

// TestRunsHelp runs the manager from the layer: it starts and lists the
// flags docs/design.md lists.
func TestRunsHelp(t *testing.T) {
	t.Parallel()
	_, manager := layerFiles(t, openArchive(t))
	bin := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(bin, manager, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runFresh(bin, "--help")
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 2: // the flag package's help with ContinueOnError
	case err == nil:
	default:
		t.Fatalf("manager --help: %v\n%s", err, out)
	}
	for _, name := range []string{
		"kubeconfig", "metrics-bind-address", "health-probe-bind-address", "leader-elect",
		"jwks-bind-address", "public-base-url", "tls-cert-file", "tls-key-file", "max-cache-age",
		"org-binding", "controllers", "jwks-server", "watch-namespace", "metrics-secure",
		"kube-api-qps", "kube-api-burst", "max-concurrent-reconciles", "tenant-selector",
	} {
		if !bytes.Contains(out, []byte("  -"+name+" ")) && !bytes.Contains(out, []byte("  -"+name+"\n")) {
			t.Errorf("manager --help does not list -%s:\n%s", name, out)
		}
	}
}

// dockerManifest is manifest.json of a docker-archive, what docker load reads.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// TestDockerArchive checks the tarball the way docker load does: one
// manifest with the tag, a config and layers present in the archive, and
// the config's diff_ids equal to the digests of the uncompressed layers.
func TestDockerArchive(t *testing.T) {
	t.Parallel()
	entries := readTar(t, image(t).archive)
	var manifests []dockerManifest
	if err := json.Unmarshal(entries["manifest.json"], &manifests); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifests) != 1 {
		t.Fatalf("%d images in the archive, want 1", len(manifests))
	}
	m := manifests[0]
	if !slices.Equal(m.RepoTags, []string{"signet:" + testVersion}) {
		t.Errorf("RepoTags %q, want [signet:%s]", m.RepoTags, testVersion)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(entries[m.Config], &cf); err != nil {
		t.Fatalf("config %s: %v", m.Config, err)
	}
	if got := "sha256:" + sha256Hex(entries[m.Config]); got != m.Config {
		t.Errorf("config stored as %s has digest %s", m.Config, got)
	}
	if len(m.Layers) != len(cf.RootFS.DiffIDs) {
		t.Fatalf("%d layers, %d diff_ids", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	for i, name := range m.Layers {
		data := entries[name]
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatalf("layer %s: %v", name, err)
		}
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		if diffID != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %s: diff_id %s, config says %s", name, diffID, cf.RootFS.DiffIDs[i])
		}
	}
}

// TestOCILayout: the layout holds the same image (the same config blob),
// named by its version.
func TestOCILayout(t *testing.T) {
	t.Parallel()
	idx, err := layout.ImageIndexFromPath(image(t).layout)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != testVersion {
		t.Fatalf("index %+v, want one manifest named %s", im.Manifests, testVersion)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	fromLayout, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	fromArchive, err := openArchive(t).ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if fromLayout != fromArchive {
		t.Errorf("layout config %s, archive config %s: not the same image", fromLayout, fromArchive)
	}
	if !strings.Contains(image(t).stdout, fromArchive.String()) {
		t.Errorf("the command's report %q does not name the config digest %s", image(t).stdout, fromArchive)
	}
}

// TestReproducible: a second run from the same sources and flags writes
// the same image, so a digest can be checked by rebuilding.
func TestReproducible(t *testing.T) {
	t.Parallel()
	first := openArchive(t)
	again, err := buildImage(context.Background(), moduleRoot(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	second, err := tarball.ImageFromPath(again.archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	for what, get := range map[string]func(v1.Image) (v1.Hash, error){
		"config": v1.Image.ConfigName, "manifest": v1.Image.Digest,
	} {
		a, errA := get(first)
		b, errB := get(second)
		if errA != nil || errB != nil || a != b {
			t.Errorf("%s digest differs between two builds: %s %s (%v %v)", what, a, b, errA, errB)
		}
	}
}

// TestBadFlags: a version that is no tag and stray arguments are refused
// before anything is built.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-version", "1.0+build"},
		{"-repo", "Signet"},
		{"stray"},
		{"-created", "-1"},
	} {
		var stderr bytes.Buffer
		out := filepath.Join(t.TempDir(), "x.tar")
		err := run(context.Background(), append([]string{"-o", out}, args...), io.Discard, &stderr)
		if err == nil {
			t.Errorf("%q: accepted", args)
		}
		if _, statErr := os.Stat(out); statErr == nil {
			t.Errorf("%q: wrote %s anyway", args, out)
		}
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		if entries[hdr.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// runFresh runs a binary the test has just written. Another test of the
// package forking a child at the moment the file was open for writing
// hands the child a copy of that descriptor, and exec then fails with
// "text file busy" until the child has exec'd in turn: a moment, so try
// again (seen on a cold run, when the builds make every fork slow).
func runFresh(bin string, args ...string) ([]byte, error) {
	for try := 0; ; try++ {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
			return out, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
