package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/config"
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
	for _, want := range []string{"CGO_ENABLED=0 go build", "-trimpath", `-ldflags "-s -w`, "-o /herd ./cmd/herd",
		"-X github.com/herd-dev/herd/internal/buildinfo.version=${VERSION}"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: the go build step %q lacks %q", build, want)
		}
	}
	if !strings.Contains(string(readFile(t, "internal/buildinfo/buildinfo.go")), "\nvar version = ") {
		t.Error("internal/buildinfo declares no version variable for the Dockerfile's -X to set")
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
	for name, cfg := range map[string][]byte{"compose": composeConfig(t), "kubernetes": readKubernetes(t).configData(t),
		"docker": readFile(t, "deploy/herd.docker.yaml")} {
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

// dockerRun is a documented docker run command: the options the tests read
// and what follows the image.
type dockerRun struct {
	where    string   // the file that documents it
	publish  []string // -p: [host-ip:][host-port:]container-port
	volumes  []string // -v: source:target[:options]
	env      []string // -e
	readOnly bool
	image    string
	args     []string
}

// dockerRunFlags are the docker run options with a value that the
// documented commands may use; boolean ones are listed with false.
var dockerRunFlags = map[string]bool{
	"-p": true, "--publish": true, "-v": true, "--volume": true, "-e": true, "--env": true,
	"--name": true, "--network": true, "--restart": true,
	"-d": false, "--detach": false, "--rm": false, "--read-only": false, "-i": false, "-t": false, "-it": false,
}

// documentedDockerRuns returns every docker run command in the file at rel,
// from a console block ("$ docker run ..."), inline code or a comment
// ("#   docker run ..."), with backslash continuations joined.
func documentedDockerRuns(t *testing.T, rel string) []dockerRun {
	t.Helper()
	var runs []dockerRun
	lines := strings.Split(string(readFile(t, rel)), "\n")
	for i := 0; i < len(lines); i++ {
		_, cmd, ok := strings.Cut(lines[i], "docker run ")
		if !ok {
			continue
		}
		cmd = "docker run " + cmd
		for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, `\`) + " " + strings.TrimLeft(lines[i], "# \t")
		}
		cmd, _, _ = strings.Cut(cmd, "`") // the end of inline code
		runs = append(runs, parseDockerRun(t, rel, shellWords(t, cmd)))
	}
	return runs
}

// shellWords splits a command line as a shell would, for the quoting the
// documented commands use: single and double quotes, no escapes.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

func parseDockerRun(t *testing.T, where string, words []string) dockerRun {
	t.Helper()
	run := dockerRun{where: where}
	i := 2 // past docker run
	for ; i < len(words) && strings.HasPrefix(words[i], "-"); i++ {
		name, value, inline := strings.Cut(words[i], "=")
		takesValue, known := dockerRunFlags[name]
		if !known {
			t.Fatalf("%s: docker run option %s is unknown to this test; add it to dockerRunFlags", where, name)
		}
		if takesValue && !inline {
			i++
			if i == len(words) {
				t.Fatalf("%s: docker run option %s has no value", where, name)
			}
			value = words[i]
		}
		switch name {
		case "-p", "--publish":
			run.publish = append(run.publish, value)
		case "-v", "--volume":
			run.volumes = append(run.volumes, value)
		case "-e", "--env":
			run.env = append(run.env, value)
		case "--read-only":
			run.readOnly = true
		}
	}
	if i == len(words) {
		t.Fatalf("%s: docker run names no image", where)
	}
	run.image, run.args = words[i], words[i+1:]
	return run
}

// mount is a -v option: a named volume or a file or folder of the host.
type mount struct {
	source, target  string
	named, readOnly bool
}

func (r dockerRun) mounts() []mount {
	var ms []mount
	for _, v := range r.volumes {
		parts := strings.Split(v, ":")
		m := mount{source: parts[0], target: parts[1]}
		m.named = !strings.Contains(m.source, "/")
		m.readOnly = len(parts) > 2 && slices.Contains(strings.Split(parts[2], ","), "ro")
		ms = append(ms, m)
	}
	return ms
}

// publishes reports whether the command publishes container port n.
func (r dockerRun) publishes(n int) bool {
	for _, p := range r.publish {
		p, _, _ = strings.Cut(p, "/")
		if p[strings.LastIndex(p, ":")+1:] == strconv.Itoa(n) {
			return true
		}
	}
	return false
}

// imageOwned returns the folders the final image gives its user, from
// COPY --chown instructions matching USER: where a new named volume
// mounted there lets the server write.
func imageOwned(t *testing.T) []string {
	t.Helper()
	final := finalStage(readDockerfile(t))
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user, _, _ = strings.Cut(in.args, ":")
		}
	}
	var owned []string
	for _, in := range final {
		fields := strings.Fields(in.args)
		if in.cmd != "COPY" || len(fields) < 2 {
			continue
		}
		for _, f := range fields {
			if chown, ok := strings.CutPrefix(f, "--chown="); ok {
				if owner, _, _ := strings.Cut(chown, ":"); owner == user {
					owned = append(owned, fields[len(fields)-1])
				}
			}
		}
	}
	return owned
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// TestDocumentedDockerRun checks each docker run command that the README,
// the Dockerfile and the container configuration document: the file it
// mounts passes herd's validation, names the server, writes only into a
// volume that the image's user owns, and listens where the published ports
// arrive.
func TestDocumentedDockerRun(t *testing.T) {
	cfgPath := imageConfigPath(t)
	owned := imageOwned(t)
	var runs []dockerRun
	for _, rel := range []string{"README.md", "Dockerfile", "deploy/herd.docker.yaml"} {
		runs = append(runs, documentedDockerRuns(t, rel)...)
	}
	if len(runs) == 0 {
		t.Fatal("no docker run command is documented")
	}
	for _, run := range runs {
		t.Run(run.where, func(t *testing.T) {
			if run.image != "herd:latest" || len(run.args) != 4 || !slices.Equal(run.args[:3], []string{"serve", "-config", cfgPath}) {
				t.Fatalf("docker run %s %q, want herd:latest serve -config %s NAME", run.image, run.args, cfgPath)
			}
			var source string
			var volumes []mount
			for _, m := range run.mounts() {
				switch {
				case m.target == cfgPath && m.readOnly:
					source = strings.TrimPrefix(m.source, "$PWD/")
				case m.target == cfgPath:
					t.Errorf("%s is mounted writable; want :ro", cfgPath)
				case m.named:
					volumes = append(volumes, m)
				}
			}
			if source == "" {
				t.Fatalf("no file of the repository is mounted at %s", cfgPath)
			}
			cfg := parseConfig(t, source, readFile(t, source))
			s, ok := cfg.Server(run.args[3])
			if !ok {
				t.Fatalf("%s has no server %s", source, run.args[3])
			}

			for field, dir := range map[string]string{"data_dir": cfg.DataDir, "log_dir": cfg.LogDir, "run_dir": cfg.RunDir} {
				if !path.IsAbs(dir) {
					dir = path.Join(path.Dir(cfgPath), dir) // as config.ReadFile resolves it
				}
				inVolume := slices.ContainsFunc(volumes, func(m mount) bool {
					return within(dir, m.target) && slices.ContainsFunc(owned, func(o string) bool { return within(m.target, o) })
				})
				if !inVolume {
					t.Errorf("%s %s is in no named volume whose folder the image's user owns (%q)", field, dir, owned)
				}
			}
			for field, addr := range map[string]string{"listen": s.ListenAddr(), "admin": s.Admin} {
				if addr == "" {
					continue
				}
				host, port := splitAddr(t, addr)
				if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
					t.Errorf("%s %s binds one interface, where published ports do not arrive; want 0.0.0.0", field, addr)
				}
				if !run.publishes(port) {
					t.Errorf("%s port %d is not published (-p %q)", field, port, run.publish)
				}
			}
			if !slices.Contains(run.env, config.EnvPeerSecret) {
				t.Errorf("the command does not pass %s", config.EnvPeerSecret)
			}
			if !run.readOnly {
				t.Error("the container's root file system is writable; want --read-only")
			}
		})
	}
}
