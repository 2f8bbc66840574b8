package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lemctl/lemctl/plugins/rapl/internal/fakesys"
)

// defaultZones is one socket as a server shows it: package-0 at 50 W, its dram at 5 W.
var defaultZones = []string{
	"intel-rapl:0=package-0,50,262143328850,200000000",
	"intel-rapl:0:0=dram,5,65712999613",
}

type zoneFlags []string

func (z *zoneFlags) String() string     { return strings.Join(*z, " ") }
func (z *zoneFlags) Set(v string) error { *z = append(*z, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fake-powercap:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fake-powercap", flag.ContinueOnError)
	root := fs.String("root", "", "directory to write <root>/class/powercap under (required)")
	tick := fs.Duration("tick", 2*time.Millisecond, "how often the counters are rewritten")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until SIGINT or SIGTERM)")
	var zones zoneFlags
	fs.Var(&zones, "zone", "DIR=NAME,WATTS,RANGE_UJ[,MAX_POWER_UW[,START_UJ]] (repeatable; default: package-0 at 50 W and its dram at 5 W)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		return errors.New("-root is required")
	}
	if len(zones) == 0 {
		zones = defaultZones
	}
	var specs []fakesys.Zone
	for _, z := range zones {
		spec, err := parseZone(z)
		if err != nil {
			return err
		}
		specs = append(specs, spec)
	}
	tree, err := fakesys.New(*root, specs...)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	tree.Run(*tick)
	fmt.Printf("start_mono_ns=%d\n", tree.StartNS())
	<-ctx.Done()
	err = tree.Stop()
	// How stale the files got (the tick, or longer when this process was starved): the
	// uncertainty of power × window as ground truth.
	fmt.Printf("max_stale_ns=%d\n", tree.MaxStale().Nanoseconds())
	return err
}

// parseZone parses DIR=NAME,WATTS,RANGE_UJ[,MAX_POWER_UW[,START_UJ]].
func parseZone(s string) (fakesys.Zone, error) {
	dir, rest, ok := strings.Cut(s, "=")
	parts := strings.Split(rest, ",")
	if !ok || dir == "" || len(parts) < 3 || len(parts) > 5 || parts[0] == "" {
		return fakesys.Zone{}, fmt.Errorf("zone %q: want DIR=NAME,WATTS,RANGE_UJ[,MAX_POWER_UW[,START_UJ]]", s)
	}
	z := fakesys.Zone{Dir: dir, Name: parts[0]}
	var err error
	if z.Watts, err = strconv.ParseFloat(parts[1], 64); err != nil || z.Watts < 0 {
		return z, fmt.Errorf("zone %q: watts %q is not a non-negative number", s, parts[1])
	}
	nums := []*uint64{&z.Range, &z.MaxPower, &z.Start}
	for i, p := range parts[2:] {
		if *nums[i], err = strconv.ParseUint(p, 10, 64); err != nil {
			return z, fmt.Errorf("zone %q: %q is not a whole number: %w", s, p, err)
		}
	}
	if z.Range == 0 {
		return z, fmt.Errorf("zone %q: the range must be positive", s)
	}
	return z, nil
}
