package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI annotation keys (image-spec annotations.md), used as config labels.
const (
	labelVersion  = "org.opencontainers.image.version"
	labelRevision = "org.opencontainers.image.revision"
	labelSource   = "org.opencontainers.image.source"
	labelTitle    = "org.opencontainers.image.title"
	annotationRef = "org.opencontainers.image.ref.name"
)

// imageTag is repo:version, refused early when version is no valid tag
// (git describe output is; a "+build" suffix is not).
func imageTag(repo, version string) (name.Tag, error) {
	tag, err := name.NewTag(repo + ":" + version)
	if err != nil {
		return name.Tag{}, fmt.Errorf("-repo %q -version %q do not make an image tag: %w", repo, version, err)
	}
	return tag, nil
}

// labels are the image's OCI labels; the revision only when known.
func (o options) labels() map[string]string {
	l := map[string]string{
		labelTitle:   "signet",
		labelVersion: o.version,
		labelSource:  o.source,
	}
	if o.revision != "" {
		l[labelRevision] = o.revision
	}
	return l
}

// newImage is the empty base plus one layer holding bin at binaryPath,
// with OCI media types and the image's config.
func newImage(bin string, o options) (v1.Image, error) {
	layer, err := binaryLayer(bin, o)
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: o.createdAt()},
			CreatedBy: fmt.Sprintf("hack/image: %s go build %s -o %s %s", strings.Join(goBuildEnv, " "), strings.Join(goBuildFlags, " "), binaryPath, managerPkg),
			Comment:   "the manager, static, alone",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	cf.Created = v1.Time{Time: o.createdAt()}
	cf.Config.Entrypoint = []string{binaryPath}
	cf.Config.Cmd = nil
	cf.Config.User = imageUser
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = o.labels()
	return mutate.ConfigFile(img, cf)
}

// binaryLayer is a tar holding only the manager, owned by root and
// executable by all, stamped with the creation time so the same binary
// gives the same layer digest.
func binaryLayer(bin string, o options) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(binaryPath, "/"),
		Mode:     0o755,
		Size:     int64(len(data)),
		ModTime:  o.createdAt(),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerTar := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeArchive writes img as a docker-archive tarball tagged tag, through
// a temporary file so that a failed run leaves no half-written image.
func writeArchive(path string, tag name.Tag, img v1.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// writeLayout writes img as the only image of an OCI layout at dir,
// replacing an earlier layout there but nothing else.
func writeLayout(dir, version string, img v1.Image) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("-oci-layout %s: exists and is not an OCI layout; refusing to overwrite it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRef: version}))
}

// report prints what was written, with the digests a user compares.
func report(w io.Writer, o options, tag string, img v1.Image) error {
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var size int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return err
		}
		size += n
	}
	fmt.Fprintf(w, "%s: %s (linux/%s), manifest %s, config %s, %d compressed layer bytes\n",
		o.output, tag, o.arch, digest, cfg, size)
	if o.ociLayout != "" {
		fmt.Fprintf(w, "%s: OCI layout, ref.name %s\n", o.ociLayout, o.version)
	}
	return nil
}
