// Command image builds signet's container image without a Docker daemon,
// from the Go module proxy only: a static build of ./cmd/manager, alone in
// one layer on an empty base (no shell, no libc, nothing else to patch),
// run as 65532:65532. It writes a docker-archive tarball, which `docker
// load`, `ctr import` and `kind load image-archive` accept, and on request
// an OCI image layout. `make image` runs it; the Dockerfile at the top of
// the repository builds the same binary the Docker way (image_test.go
// keeps the two equivalent).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"time"
)

// The image's contract, shared with the Dockerfile (see image_test.go).
const (
	binaryPath = "/manager"
	imageUser  = "65532:65532" // distroless' "nonroot"
	defaultSrc = "https://github.com/signet-dev/signet"
	managerPkg = "./cmd/manager"
)

// goBuildFlags build a static, reproducible binary: no cgo (so no libc to
// load), no local paths, no VCS stamp, no symbol table.
var goBuildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

// goBuildEnv is the environment of the build besides GOOS and GOARCH.
var goBuildEnv = []string{"CGO_ENABLED=0"}

// options are the command's flags.
type options struct {
	output    string // docker-archive tarball
	ociLayout string // OCI image layout directory; "" for none
	repo      string // image name without tag
	version   string // the tag and org.opencontainers.image.version
	revision  string // org.opencontainers.image.revision
	source    string // org.opencontainers.image.source
	created   int64  // Unix seconds: the image's and the files' time
	arch      string // GOARCH of the binary and the image
	moduleDir string // the signet module to build from
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.output, "o", "bin/signet-image.tar", "Path of the docker-archive tarball to write.")
	fs.StringVar(&o.ociLayout, "oci-layout", "", "Also write an OCI image layout to this directory.")
	fs.StringVar(&o.repo, "repo", "signet", "Image name, without tag.")
	fs.StringVar(&o.version, "version", "dev", "Image tag and org.opencontainers.image.version label.")
	fs.StringVar(&o.revision, "revision", "", "Source revision (git commit): org.opencontainers.image.revision label.")
	fs.StringVar(&o.source, "source", defaultSrc, "org.opencontainers.image.source label.")
	fs.Int64Var(&o.created, "created", 0, "Creation time in Unix seconds (SOURCE_DATE_EPOCH); the same inputs give the same image.")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the manager binary and of the image.")
	fs.StringVar(&o.moduleDir, "C", ".", "Directory of the signet module.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.output == "" {
		return o, fmt.Errorf("-o must name a file")
	}
	if o.created < 0 {
		return o, fmt.Errorf("-created must not be negative")
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// run builds the binary, assembles the image and writes it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	tag, err := imageTag(o.repo, o.version)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "signet-image-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	bin, err := buildManager(ctx, o.moduleDir, o.arch, work, stderr)
	if err != nil {
		return err
	}
	img, err := newImage(bin, o)
	if err != nil {
		return err
	}
	if err := writeArchive(o.output, tag, img); err != nil {
		return err
	}
	if o.ociLayout != "" {
		if err := writeLayout(o.ociLayout, o.version, img); err != nil {
			return err
		}
	}
	return report(stdout, o, tag.String(), img)
}

// created is the time stamped on the image and its files.
func (o options) createdAt() time.Time { return time.Unix(o.created, 0).UTC() }
