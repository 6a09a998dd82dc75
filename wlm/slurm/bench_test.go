package slurm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// The benchmarks measure the adapters' own cost on a 10,000-node machine:
// parsing a poll's answer and building the hostlist of a big step. Their
// input is the recorded output of a real node, repeated under 10,000
// names.

const benchNodes = 10000

func benchNames() []string {
	names := make([]string, benchNodes)
	for i := range names {
		names[i] = fmt.Sprintf("nid%06d", i+1)
	}
	return names
}

// BenchmarkParseShowNode10k parses `scontrol show node` for 10,000 nodes
// (a step that large is one command).
func BenchmarkParseShowNode10k(b *testing.B) {
	rec := readTestdata(b, "show-node.txt")
	start := bytes.Index(rec, []byte("NodeName=nid000002"))
	end := bytes.Index(rec, []byte("NodeName=nid000003"))
	block := rec[start:end]
	var out bytes.Buffer
	for _, n := range benchNames() {
		out.Write(bytes.Replace(block, []byte("nid000002"), []byte(n), 1))
	}
	b.SetBytes(int64(out.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if res := parseShowNode(out.Bytes()); len(res.nodes) != benchNodes {
			b.Fatalf("%d nodes", len(res.nodes))
		}
	}
}

// BenchmarkParseNodesJSON10k parses GET /slurm/v0.0.38/nodes of a
// 10,000-node machine: what the REST adapter reads at every poll.
func BenchmarkParseNodesJSON10k(b *testing.B) {
	_, body := restBody(readTestdata(b, "rest-v0.0.38-nodes.txt"))
	var doc struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		b.Fatal(err)
	}
	proto := doc.Nodes[1]
	var nodes []map[string]any
	for _, n := range benchNames() {
		m := map[string]any{}
		for k, v := range proto {
			m[k] = v
		}
		m["name"] = n
		nodes = append(nodes, m)
	}
	big, err := json.Marshal(map[string]any{"nodes": nodes, "errors": []any{}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(big)))
	b.ReportAllocs()
	for b.Loop() {
		if got, _, err := parseNodesJSON(big); err != nil || len(got) != benchNodes {
			b.Fatalf("%d nodes, %v", len(got), err)
		}
	}
}

// BenchmarkCompressHostlist10k folds 10,000 names, every third one left
// out, into one hostlist expression.
func BenchmarkCompressHostlist10k(b *testing.B) {
	var names []string
	for i, n := range benchNames() {
		if i%3 != 0 {
			names = append(names, n)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if CompressHostlist(names) == "" {
			b.Fatal("empty")
		}
	}
}
