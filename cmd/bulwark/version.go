package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/bulwark-go/bulwark"
)

// version is stamped in by the release build (deploy/build.sh:
// -X main.version=...); empty in a plain go build, where the module's
// version or bulwark.Version stands instead.
var version string

// buildInfo describes this binary: its version, the commit it was built
// from, and how (Go version, platform, cgo, flags).
type buildInfo struct {
	Version, Commit, CommitTime, GoVersion, Platform string
	Modified                                         bool
	Settings                                         map[string]string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Settings: map[string]string{}}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version // go install ...@vX.Y.Z
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.CommitTime = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			case "CGO_ENABLED", "-trimpath", "-ldflags", "-race", "-tags", "GOAMD64", "GOARM64":
				b.Settings[s.Key] = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = bulwark.Version
	}
	return b
}

// runVersion prints the version line and, with -v, the build details.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	verbose := fs.Bool("v", false, "also print the commit and the build settings")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b := readBuildInfo()
	commit := b.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown"
	}
	if b.Modified {
		commit += "+dirty"
	}
	fmt.Fprintf(stdout, "bulwark %s (commit %s, %s, %s)\n", b.Version, commit, b.GoVersion, b.Platform)
	if *verbose {
		if b.CommitTime != "" {
			fmt.Fprintf(stdout, "commit time  %s\n", b.CommitTime)
		}
		for _, k := range []string{"CGO_ENABLED", "-trimpath", "-ldflags", "-race", "-tags", "GOAMD64", "GOARM64"} {
			if v, ok := b.Settings[k]; ok {
				fmt.Fprintf(stdout, "%-12s %s\n", k, v)
			}
		}
	}
	return nil
}
