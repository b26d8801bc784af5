package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args      []string
		wantOut   string
		wantUsage bool
		wantErr   bool
	}{
		{args: []string{"version"}, wantOut: "bulwark " + bulwark.Version},
		{args: []string{"help"}, wantOut: "Commands:"},
		{args: nil, wantErr: true, wantUsage: true},
		{args: []string{"frobnicate"}, wantErr: true, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(t.Context(), tt.args, &out, &errOut)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if errors.Is(err, errUsage) != tt.wantUsage {
				t.Fatalf("usage error = %v, want %v", errors.Is(err, errUsage), tt.wantUsage)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("stdout %q does not contain %q", out.String(), tt.wantOut)
			}
			if tt.wantUsage && !strings.Contains(errOut.String(), "Usage:") {
				t.Fatalf("usage not printed on stderr: %q", errOut.String())
			}
		})
	}
}
