package raftbolt

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if i, err := s.FirstIndex(); err != nil || i != 0 {
		t.Fatalf("empty FirstIndex = %d, %v", i, err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte{byte(i)}, Extensions: []byte("x")})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(7, &got); err != nil || got.Index != 7 || got.Term != 2 || got.Data[0] != 7 || string(got.Extensions) != "x" {
		t.Fatalf("GetLog(7) = %+v, %v", got, err)
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 5 || last != 10 {
		t.Fatalf("after DeleteRange: first %d last %d", first, last)
	}
	if err := s.GetLog(3, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(deleted) = %v, want ErrLogNotFound", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v (raft compares the text \"not found\")", err)
	}
	s.Close()
	// Everything survives a reopen: a restarted node keeps its vote.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("term after reopen = %d, %v", v, err)
	}
	if last, _ := s.LastIndex(); last != 10 {
		t.Fatalf("last index after reopen = %d", last)
	}
}
