package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Recipe is what the final stage of Dockerfile.sandbox asks for, read from the file
// itself so the image the e2e tests run cannot drift from it: a Debian base, the apt
// packages, shell steps run in the root filesystem, where the agent goes, and the
// image config (user, entrypoint, ports).
type Recipe struct {
	// Suite is the Debian release of the base image (debian:<suite>-slim).
	Suite string
	// Packages are installed with apt; Recommends too unless the Dockerfile says
	// --no-install-recommends.
	Packages   []string
	Recommends bool
	// Run are the other RUN steps, in order, run with sh -c in the root filesystem.
	Run []string
	// AgentPath is where the sandbox-agent binary goes (COPY --from=build /out/sandbox-agent ...).
	AgentPath  string
	User       string
	Entrypoint []string
	Exposed    []string
}

// agentBuildOutput is what the build stage writes and the final stage copies.
const agentBuildOutput = "/out/sandbox-agent"

// ParseDockerfile reads the final stage of a Dockerfile like Dockerfile.sandbox. An
// instruction it does not know how to reproduce is an error, so a change to the
// Dockerfile that the builder would silently drop fails the build and its test.
func ParseDockerfile(r io.Reader) (*Recipe, error) {
	var (
		rec     *Recipe
		stages  int
		sawAgnt bool
	)
	insts, err := instructions(r)
	if err != nil {
		return nil, err
	}
	for _, in := range insts {
		op, arg := in[0], in[1]
		if op == "FROM" {
			stages++
			rec = &Recipe{}
			f := strings.Fields(arg)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				rec = nil // a named build stage: its output is the agent, built here with go build
				continue
			}
			suite, ok := strings.CutPrefix(f[0], "debian:")
			suite, slim := strings.CutSuffix(suite, "-slim")
			if !ok || !slim || len(f) != 1 {
				return nil, fmt.Errorf("final stage FROM %q: only debian:<suite>-slim can be reproduced with mmdebstrap", arg)
			}
			rec.Suite = suite
			continue
		}
		if rec == nil {
			if stages == 0 && op != "ARG" {
				return nil, fmt.Errorf("%s before FROM", op)
			}
			continue // the build stage
		}
		switch op {
		case "RUN":
			if pkgs, ok := aptInstall(arg); ok {
				if len(rec.Packages) > 0 {
					return nil, fmt.Errorf("more than one apt-get install RUN step")
				}
				rec.Packages = pkgs
				rec.Recommends = !strings.Contains(arg, "--no-install-recommends")
				continue
			}
			if len(rec.Packages) == 0 {
				// mmdebstrap installs the packages first and runs the other steps after.
				return nil, fmt.Errorf("RUN %q comes before the apt-get install step; hack/images/build runs such steps after it", arg)
			}
			rec.Run = append(rec.Run, arg)
		case "COPY":
			f := strings.Fields(arg)
			if len(f) != 3 || f[0] != "--from=build" || f[1] != agentBuildOutput {
				return nil, fmt.Errorf("COPY %s: only COPY --from=build %s <path> can be reproduced", arg, agentBuildOutput)
			}
			rec.AgentPath, sawAgnt = f[2], true
		case "USER":
			rec.User = arg
		case "EXPOSE":
			for _, p := range strings.Fields(arg) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				rec.Exposed = append(rec.Exposed, p)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(arg), &rec.Entrypoint); err != nil {
				return nil, fmt.Errorf("ENTRYPOINT must be a JSON array: %w", err)
			}
		default:
			return nil, fmt.Errorf("final stage: %s is not reproduced by hack/images/build; teach it, or change the Dockerfile", op)
		}
	}
	switch {
	case rec == nil:
		return nil, fmt.Errorf("no final stage FROM debian:<suite>-slim")
	case !sawAgnt:
		return nil, fmt.Errorf("the final stage does not COPY the agent (--from=build %s)", agentBuildOutput)
	case len(rec.Packages) == 0:
		return nil, fmt.Errorf("the final stage installs no apt packages")
	}
	return rec, nil
}

// instructions splits a Dockerfile into [instruction, argument] pairs, joining
// continuation lines and dropping comments and the parser directive.
func instructions(r io.Reader) ([][2]string, error) {
	var (
		out [][2]string
		cur strings.Builder
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		cont := strings.HasSuffix(line, "\\")
		line = strings.TrimSuffix(line, "\\")
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(strings.TrimSpace(line))
		if cont {
			continue
		}
		s := cur.String()
		cur.Reset()
		op, arg, _ := strings.Cut(s, " ")
		out = append(out, [2]string{strings.ToUpper(op), strings.Join(strings.Fields(arg), " ")})
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("the last instruction ends with a line continuation")
	}
	return out, sc.Err()
}

// aptInstall returns the packages of a RUN step that runs apt-get install (with apt-get
// update before it and the lists removed after it, as a Dockerfile does).
func aptInstall(run string) ([]string, bool) {
	var pkgs []string
	found := false
	for _, part := range strings.Split(run, "&&") {
		f := strings.Fields(part)
		for i, w := range f {
			if w == "apt-get" && i+1 < len(f) && f[i+1] == "install" {
				found = true
				for _, p := range f[i+2:] {
					if !strings.HasPrefix(p, "-") {
						pkgs = append(pkgs, p)
					}
				}
			}
		}
	}
	return pkgs, found
}
