// Command badplugin is the test plugin of host/discovery: one binary whose mode decides how it
// (mis)behaves, so that every way a plugin can go wrong is exercised against the real host code
// over a real subprocess. Tests build it once and copy it under several lem-plugin-<name> names.
//
// The mode comes from a JSON spec file named by $LEM_TEST_PLUGIN_SPEC ({"<path or name>":
// {"mode", "name", "version", "kinds"}}), looked up by the binary's path, then by its name; without
// an entry the mode is the plugin name up to its first '-' (lem-plugin-hang-1 → "hang").
//
// Modes: good (a working plugin serving the kinds asked for, energy by default), stdout (writes
// to stdout before serving), hang (never completes the handshake), crash (exits at start),
// api99 (serves only protocol version 99), liar (claims the engine kind but serves no engine
// service), infoapi (handshakes on version 1 but says it speaks only version 7), misname (answers
// with another name than its file's), pidfile (good, and appends its pid to $LEM_TEST_PID_FILE;
// hang does too when the variable is set), invfail (good, but its meter's Inventory fails) and
// invunavail (good, but its meter's Inventory says sdk.ErrUnavailable: no such hardware here) and
// invcrash (good, but the process exits inside its meter's Inventory), panicstart (good, but
// its meter reports one node domain and its Start panics, killing the process with a Go panic on
// stderr), invhang (good, but its
// meter's Inventory never answers), starthang (good, with a working Inventory of one node domain,
// but its meter's Start never answers, whatever the host's context says; it writes its pid like pidfile when
// $LEM_TEST_PID_FILE is set), spawn (good, after starting a `sleep 300` child that inherits its
// stdout and stderr) and spawnhang (starts that child, then never completes the handshake).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	pluginv1 "github.com/lemctl/lemctl/sdk/proto/lem/plugin/v1"
	"github.com/lemctl/lemctl/sdk/units"
)

type spec struct {
	Mode    string   `json:"mode"`
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Kinds   []string `json:"kinds"`
}

func main() {
	exe, _ := os.Executable()
	path, _ := filepath.Abs(os.Args[0])
	name := strings.TrimPrefix(filepath.Base(path), "lem-plugin-")
	s := spec{}
	if f := os.Getenv("LEM_TEST_PLUGIN_SPEC"); f != "" {
		raw, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		all := map[string]spec{}
		if err := json.Unmarshal(raw, &all); err != nil {
			fail(err)
		}
		var ok bool
		if s, ok = all[path]; !ok {
			if s, ok = all[exe]; !ok {
				s = all[name]
			}
		}
	}
	if s.Mode == "" {
		s.Mode, _, _ = strings.Cut(name, "-")
	}
	if s.Name == "" {
		s.Name = name
	}
	if s.Version == "" {
		s.Version = "1.0.0"
	}
	if len(s.Kinds) == 0 {
		s.Kinds = []string{"energy"}
	}
	switch s.Mode {
	case "good", "invfail", "invunavail", "invcrash", "panicstart", "invhang":
		serveGood(s)
	case "starthang":
		if os.Getenv("LEM_TEST_PID_FILE") != "" {
			writePid()
		}
		serveGood(s)
	case "pidfile":
		writePid()
		serveGood(s)
	case "spawn":
		spawnSleeper()
		serveGood(s)
	case "spawnhang":
		spawnSleeper()
		select {}
	case "stdout":
		fmt.Println("hello from a chatty plugin")
		serveGood(s)
	case "hang":
		if os.Getenv("LEM_TEST_PID_FILE") != "" {
			writePid()
		}
		select {}
	case "crash":
		fmt.Fprintln(os.Stderr, "badplugin: simulated crash at start")
		os.Exit(3)
	case "misname":
		s.Name = "someone-else"
		serveGood(s)
	case "api99":
		serveRaw(99, &pluginv1.InfoResponse{Name: s.Name, Version: s.Version, Kinds: []string{"energy"}, ApiVersions: []uint32{99}})
	case "liar":
		serveRaw(sdk.APIVersion, &pluginv1.InfoResponse{Name: s.Name, Version: s.Version, Kinds: []string{"engine"}, ApiVersions: []uint32{sdk.APIVersion}})
	case "infoapi":
		serveRaw(sdk.APIVersion, &pluginv1.InfoResponse{Name: s.Name, Version: s.Version, Kinds: []string{"energy"}, ApiVersions: []uint32{7}})
	default:
		fail(fmt.Errorf("unknown mode %q", s.Mode))
	}
}

// spawnSleeper starts `sleep 300` sharing the plugin's stdout and stderr, and does not wait for
// it: a child the host must end with the plugin.
func spawnSleeper() {
	cmd := exec.Command("sleep", "300")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fail(err)
	}
}

// writePid appends the process id to $LEM_TEST_PID_FILE, so tests can tell that a binary ran
// and check that its process is gone.
func writePid() {
	f, err := os.OpenFile(os.Getenv("LEM_TEST_PID_FILE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "badplugin:", err)
	os.Exit(2)
}

func serveGood(s spec) {
	p := &sdk.Plugin{
		Name:        s.Name,
		Version:     s.Version,
		Description: "discovery test plugin",
		Capabilities: map[string]string{
			"mode": s.Mode,
		},
		Schema: []sdk.ConfigKey{
			{Key: "interval", Type: sdk.TypeDuration, Default: "100ms", Doc: "sampling interval"},
			{Key: "level", Type: sdk.TypeInt, Default: 3, Doc: "how hard to try", Min: sdk.Bound(1), Max: sdk.Bound(9)},
			{Key: "flavour", Type: sdk.TypeString, Default: "plain", Doc: "a choice", Enum: []string{"plain", "spicy"}},
		},
	}
	for _, k := range s.Kinds {
		switch sdk.Kind(k) {
		case sdk.KindEnergy:
			p.Energy = meter{mode: s.Mode}
		case sdk.KindLoader:
			p.Loader = loader{}
		default:
			fail(fmt.Errorf("badplugin serves only energy and loader, not %q", k))
		}
	}
	sdk.Serve(p)
}

// meter is an energy meter with no domains.
type meter struct{ mode string }

func (m meter) Inventory(context.Context) ([]sdk.Domain, error) {
	switch m.mode {
	case "invfail":
		return nil, errors.New("simulated inventory failure")
	case "invunavail":
		return nil, fmt.Errorf("no simulated hardware on this machine: %w", sdk.ErrUnavailable)
	case "invcrash":
		fmt.Fprintln(os.Stderr, "badplugin: simulated crash in Inventory")
		os.Exit(3)
	case "invhang":
		select {}
	case "panicstart", "starthang":
		// One simulated domain, so that a run selects the meter and its workers call Start.
		return []sdk.Domain{{ID: "bad0", Name: "badplugin node", Kind: sdk.DomainNode, Scope: sdk.ScopeNode,
			Method: sdk.MethodCounter, Confidence: sdk.ConfidenceSimulated, Available: true,
			Resolution: units.Microjoule, UpdatePeriod: 10 * time.Millisecond}}, nil
	}
	return nil, nil
}
func (meter) Environment(context.Context) (*sdk.Environment, error) {
	return &sdk.Environment{Facts: map[string]string{"test": "yes"}}, nil
}
func (m meter) Start(context.Context, sdk.StartRequest) (*sdk.Session, error) {
	if m.mode == "panicstart" {
		panic("badplugin: simulated panic in Start")
	}
	if m.mode == "starthang" {
		select {} // sleeps forever, deaf to cancellation
	}
	return nil, fmt.Errorf("no domains: %w", sdk.ErrFailedPrecondition)
}
func (meter) Mark(context.Context, string, string) (int64, error) { return 0, sdk.ErrNotFound }
func (meter) Stop(context.Context, string) (*sdk.Measurement, error) {
	return nil, sdk.ErrNotFound
}

// loader resolves nothing and tokenizes bytes.
type loader struct{}

func (loader) Resolve(_ context.Context, ref string) (*sdk.Artifact, error) {
	return nil, fmt.Errorf("resolve %q: %w", ref, sdk.ErrNotFound)
}
func (loader) Tokenize(_ context.Context, _ string, texts []string) ([][]int32, error) {
	out := make([][]int32, len(texts))
	for i, t := range texts {
		for _, b := range []byte(t) {
			out[i] = append(out[i], int32(b))
		}
	}
	return out, nil
}
func (loader) Detokenize(_ context.Context, _ string, ids [][]int32) ([]string, error) {
	out := make([]string, len(ids))
	for i, row := range ids {
		b := make([]byte, len(row))
		for j, id := range row {
			b[j] = byte(id)
		}
		out[i] = string(b)
	}
	return out, nil
}

// serveRaw serves only the common service, with a fixed Info, on protocol version v — bypassing
// the sdk, which would never claim a kind it does not serve or speak a version it does not know.
func serveRaw(v int, info *pluginv1.InfoResponse) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hostclient.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{v: {"plugin": &rawPlugin{info: info}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

type rawPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	info *pluginv1.InfoResponse
}

func (r *rawPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, &rawServer{info: r.info})
	return nil
}

func (r *rawPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("badplugin is a server only")
}

type rawServer struct {
	pluginv1.UnimplementedPluginServer
	info *pluginv1.InfoResponse
}

func (r *rawServer) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return r.info, nil
}

func (r *rawServer) Configure(context.Context, *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	return &pluginv1.ConfigureResponse{}, nil
}
