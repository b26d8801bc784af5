// Package netns runs a test binary inside a private network namespace, so
// that tests on loopback get a loopback of their own. The machines Bulwark
// is tested on at times shape the host's lo to 1 Mbit/s; a test that
// measures latency or bandwidth there measures the shaper, not Bulwark.
//
// Call Isolate first thing in TestMain:
//
//	func TestMain(m *testing.M) {
//		if code, done := netns.Isolate(); done {
//			os.Exit(code)
//		}
//		os.Exit(m.Run())
//	}
//
// As root (CI), Isolate re-runs the test binary under `unshare -n` with lo
// up and returns its exit code; elsewhere, or when unshare is missing, it
// returns done=false and the tests run on the host's loopback as usual.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// envInside marks a process already running in the private namespace.
const envInside = "BULWARK_NETNS_INSIDE"

// Isolate re-runs the current test binary in a private network namespace
// when it can. done reports whether it did; code is then the exit code to
// exit with.
func Isolate() (code int, done bool) {
	if os.Getenv(envInside) != "" || os.Geteuid() != 0 || os.Getenv("BULWARK_NETNS") == "off" {
		return 0, false
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return 0, false
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return 0, false
	}
	args := append([]string{"-n", "--", "sh", "-c", ip + ` link set lo up && exec "$0" "$@"`, os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command(unshare, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInside+"=1")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), true
		}
		// unshare itself could not run (no permission in a container):
		// fall back to the host's loopback.
		fmt.Fprintln(os.Stderr, "netns: cannot isolate, testing on the host's loopback:", err)
		return 0, false
	}
	return 0, true
}

// Inside reports whether this process runs in the private namespace.
func Inside() bool { return os.Getenv(envInside) != "" }
