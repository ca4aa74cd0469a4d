package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The Dockerfile is for those who build with Docker; these tests keep it
// equivalent to `make image`: the same go build flags and environment, the
// same user, entrypoint and labels, and a context that holds every package
// the manager is built from.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from  string // the FROM line's arguments
	instr []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var stages []stage
	var line strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if line.Len() == 0 && (text == "" || strings.HasPrefix(text, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(text)
		cmd, args, _ := strings.Cut(line.String(), " ")
		line.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			t.Fatalf("%s before the first FROM", in.cmd)
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// words splits a shell command line: whitespace separates words outside
// quotes, quotes are removed (enough for the Dockerfile's RUN and LABEL).
func words(s string) []string {
	var out []string
	var w strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func TestDockerfileMatchesImage(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, filepath.Join(moduleRoot(t), "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a builder and the final image", len(stages))
	}
	builder, final := stages[0], stages[1]
	if !strings.HasSuffix(builder.from, " AS builder") || !strings.Contains(builder.from, "golang:") {
		t.Errorf("builder stage FROM %q, want a golang image AS builder", builder.from)
	}
	if final.from != "gcr.io/distroless/static:nonroot" {
		t.Errorf("final stage FROM %q, want gcr.io/distroless/static:nonroot", final.from)
	}

	t.Run("go build", func(t *testing.T) {
		var build []string
		for _, in := range builder.all("RUN") {
			if w := words(in.args); slices.Contains(w, "build") {
				build = w
			}
		}
		i := slices.Index(build, "go")
		if i < 0 || i+1 >= len(build) || build[i+1] != "build" {
			t.Fatalf("no go build in the builder stage's RUN lines")
		}
		env, args := build[:i], build[i+2:]
		for _, e := range goBuildEnv {
			if !slices.Contains(env, e) {
				t.Errorf("go build environment %q lacks %s", env, e)
			}
		}
		if !slices.Contains(env, "GOOS=${TARGETOS}") || !slices.Contains(env, "GOARCH=${TARGETARCH}") {
			t.Errorf("go build environment %q does not build for the target platform", env)
		}
		want := append(append(slices.Clone(goBuildFlags), "-o", binaryPath), managerPkg)
		if !slices.Equal(args, want) {
			t.Errorf("Dockerfile builds with %q, make image with %q", args, want)
		}
	})

	t.Run("final image", func(t *testing.T) {
		copies := final.all("COPY")
		if len(copies) != 1 || copies[0].args != "--from=builder "+binaryPath+" "+binaryPath {
			t.Errorf("final stage COPY %v, want only the manager to %s", copies, binaryPath)
		}
		if users := final.all("USER"); len(users) != 1 || users[0].args != imageUser {
			t.Errorf("USER %v, want %s", users, imageUser)
		}
		var entrypoint []string
		if eps := final.all("ENTRYPOINT"); len(eps) != 1 || json.Unmarshal([]byte(eps[0].args), &entrypoint) != nil {
			t.Fatalf("ENTRYPOINT %v, want one in exec (JSON) form", eps)
		}
		if !slices.Equal(entrypoint, []string{binaryPath}) {
			t.Errorf("ENTRYPOINT %q, want [%s]", entrypoint, binaryPath)
		}
		if n := len(final.all("RUN")) + len(final.all("CMD")); n != 0 {
			t.Errorf("final stage has %d RUN/CMD lines; distroless has no shell to run them", n)
		}
	})

	t.Run("labels", func(t *testing.T) {
		got := map[string]string{}
		for _, in := range final.all("LABEL") {
			for _, kv := range words(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = v
			}
		}
		want := options{version: "${VERSION}", revision: "${REVISION}", source: defaultSrc}.labels()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("LABEL %s=%q, make image sets %q", k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("LABEL %s only in the Dockerfile", k)
			}
		}
	})
}

// TestDockerContextHoldsSources: every directory of the module that the
// manager is compiled from is copied into the builder and not excluded by
// .dockerignore, so `docker build` never misses a package make image has.
func TestDockerContextHoldsSources(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	var copied []string
	for _, in := range stages[0].all("COPY") {
		w := words(in.args)
		copied = append(copied, w[:len(w)-1]...)
	}
	allowed := dockerignoreAllows(t, filepath.Join(root, ".dockerignore"))
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", managerPkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dir := range strings.FieldsSeq(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0] + "/"
		if !slices.Contains(copied, top) {
			t.Errorf("the manager is built from %s, which the Dockerfile does not COPY", rel)
		}
		if !slices.Contains(allowed, top) {
			t.Errorf("the manager is built from %s, which .dockerignore leaves out of the context", rel)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(allowed, f) {
			t.Errorf(".dockerignore leaves out %s", f)
		}
	}
}

// dockerignoreAllows reads a .dockerignore of the form "*" then "!path"
// lines, and returns the paths let in.
func dockerignoreAllows(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var allowed []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "!"); ok {
			allowed = append(allowed, p)
		}
	}
	return allowed
}
