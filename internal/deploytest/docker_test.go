package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more)
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// finalStage returns the instructions of the Dockerfile's last stage, FROM
// first.
func finalStage(ins []instruction) []instruction {
	last := 0
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	return ins[last:]
}

// execForm decodes a JSON-array instruction such as CMD ["serve"].
func execForm(t *testing.T, ins []instruction, cmd string) []string {
	t.Helper()
	for _, in := range ins {
		if in.cmd == cmd {
			var args []string
			if err := json.Unmarshal([]byte(in.args), &args); err != nil {
				t.Fatalf("Dockerfile: %s %s is not in exec (JSON) form", cmd, in.args)
			}
			return args
		}
	}
	t.Fatalf("Dockerfile: no %s", cmd)
	return nil
}

// imageConfigPath is where the image's default command reads the
// configuration; every orchestrator passes the same path.
func imageConfigPath(t *testing.T) string {
	t.Helper()
	cmd := execForm(t, readDockerfile(t), "CMD")
	if len(cmd) != 3 || cmd[0] != "serve" || cmd[1] != "-config" {
		t.Fatalf("Dockerfile: CMD %q, want serve -config FILE (the orchestrator appends the name)", cmd)
	}
	return cmd[2]
}

func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	if ins[0] != (instruction{"FROM", "golang:1.26 AS build"}) {
		t.Errorf("Dockerfile starts with %v, want the golang:1.26 build stage", ins[0])
	}
	var build string
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "-trimpath", `-ldflags "-s -w`, "-o /herd ./cmd/herd"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: the go build step %q lacks %q", build, want)
		}
	}

	final := finalStage(ins)
	if base := final[0].args; !strings.HasPrefix(base, "gcr.io/distroless/static") || !strings.HasSuffix(base, ":nonroot") {
		t.Errorf("Dockerfile: runtime image %q, want a distroless static :nonroot image", base)
	}
	for _, in := range final {
		if user, _, _ := strings.Cut(in.args, ":"); in.cmd == "USER" && (user == "0" || user == "root") {
			t.Errorf("Dockerfile: USER %s runs as root", in.args)
		}
	}
	if got := execForm(t, final, "ENTRYPOINT"); !slices.Equal(got, []string{"/herd"}) {
		t.Errorf("Dockerfile: ENTRYPOINT %q, want [/herd]", got)
	}
	volumes := execForm(t, final, "VOLUME")
	if dir := path.Dir(imageConfigPath(t)); !slices.Contains(volumes, dir) {
		t.Errorf("Dockerfile: VOLUME %q lacks the configuration's folder %s", volumes, dir)
	}
	for name, cfg := range map[string][]byte{"compose": composeConfig(t), "kubernetes": readKubernetes(t).configData(t)} {
		if dataDir := parseConfig(t, name, cfg).DataDir; !slices.Contains(volumes, dataDir) {
			t.Errorf("Dockerfile: VOLUME %q lacks %s's data_dir %s", volumes, name, dataDir)
		}
	}
}

func TestDockerignore(t *testing.T) {
	ignored := strings.Fields(string(readFile(t, ".dockerignore")))
	for _, want := range []string{".git", "logs", "data", "run"} {
		if !slices.Contains(ignored, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}
