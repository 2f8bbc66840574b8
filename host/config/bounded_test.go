package config_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
)

const boundedMinimal = `
[model]
plugin = "onnx"
ref = "synthetic:gpt2-124m"
[engine]
plugin = "onnx"
[repository]
plugin = "fsstore"
`

// TestConfigFileOverTheLimit: a config file over config.MaxFileBytes is refused unread, naming
// the file, its size and the limit; one at the limit is read.
func TestConfigFileOverTheLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	data := []byte(boundedMinimal + "# " + strings.Repeat("x", config.MaxFileBytes) + "\n")
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := config.LoadFile(context.Background(), big, config.Options{Configurer: configtest.Standard()})
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].File != big {
		t.Fatalf("LoadFile of %d bytes = %v, want one error naming the file", len(data), err)
	}
	for _, want := range []string{fmt.Sprintf("%d bytes", len(data)), fmt.Sprintf("limit of %d bytes (1 MiB)", config.MaxFileBytes)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := config.Load(context.Background(), "inline", data, config.Options{}); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("Load of %d bytes = %v, want the limit", len(data), err)
	}
	atLimit := append([]byte(boundedMinimal+"# "), []byte(strings.Repeat("x", config.MaxFileBytes-len(boundedMinimal)-3)+"\n")...)
	ok := filepath.Join(dir, "ok.toml")
	if err := os.WriteFile(ok, atLimit, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadFile(context.Background(), ok, config.Options{Configurer: configtest.Standard()}); err != nil {
		t.Errorf("a config of exactly %d bytes was refused: %v", len(atLimit), err)
	}
}

// TestEchoedValuesAreCut: a huge value, key or --set argument is echoed as its first 200
// characters and its size, never whole.
func TestEchoedValuesAreCut(t *testing.T) {
	huge := strings.Repeat("v", 900<<10)
	cases := map[string]config.Options{
		"enum value in the file": {},
		"--set value":            {Overrides: config.Overrides{Set: []string{"workload.order=" + huge}}},
		"--set key":              {Overrides: config.Overrides{Set: []string{"workload." + strings.Repeat("k", 100<<10) + "=1"}}},
		"--set not TOML":         {Overrides: config.Overrides{Set: []string{"workload.order=[" + huge}}},
		"dataset path":           {Overrides: config.Overrides{Dataset: "/no/" + huge + ".jsonl"}},
		"plugin name":            {Overrides: config.Overrides{Set: []string{"energy.meters=[\"" + huge + "\"]"}}},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			doc := boundedMinimal
			if name == "enum value in the file" {
				doc += "[workload]\norder = \"" + huge + "\"\n"
			}
			opts.Configurer = configtest.Standard()
			_, err := config.Load(context.Background(), "e.toml", []byte(doc), opts)
			if err == nil {
				t.Fatal("loaded")
			}
			if msg := err.Error(); len(msg) > 2000 || !strings.Contains(msg, " bytes)") {
				t.Errorf("error of %d bytes, want under 2000 with the value's size: %.300s", len(msg), msg)
			}
		})
	}
}
