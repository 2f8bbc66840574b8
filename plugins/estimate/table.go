package estimate

import (
	"bufio"
	"io/fs"
	"strings"
)

// CorePower is a per-core power for one CPU model: the vendor's thermal design power divided by
// its physical cores, with where both come from. It is the power of a fully busy core; an
// estimate from it is crude and never a measurement (docs/estimate.md).
type CorePower struct {
	Model        string // the "model name" of /proc/cpuinfo, matched exactly
	TDPW         float64
	Cores        int
	Source       string
	WattsPerCore float64
}

// Table is the per-core power table. Keep it small and sourced: every entry names the vendor
// page its TDP and core count come from (docs/estimate.md lists the same entries).
var Table = []CorePower{
	entry("Intel(R) Xeon(R) Platinum 8480+", 350, 56, "Intel ARK, Xeon Platinum 8480+ (TDP 350 W, 56 cores)"),
	entry("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 270, 40, "Intel ARK, Xeon Platinum 8380 (TDP 270 W, 40 cores)"),
	entry("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 205, 32, "Intel ARK, Xeon Gold 6338 (TDP 205 W, 32 cores)"),
	entry("AMD EPYC 7763 64-Core Processor", 280, 64, "AMD product page, EPYC 7763 (default TDP 280 W, 64 cores)"),
	entry("AMD EPYC 7742 64-Core Processor", 225, 64, "AMD product page, EPYC 7742 (default TDP 225 W, 64 cores)"),
	entry("AMD EPYC 9654 96-Core Processor", 360, 96, "AMD product page, EPYC 9654 (default TDP 360 W, 96 cores)"),
}

func entry(model string, tdp float64, cores int, source string) CorePower {
	return CorePower{Model: model, TDPW: tdp, Cores: cores, Source: source, WattsPerCore: tdp / float64(cores)}
}

// lookup returns the table entry of model (surrounding and repeated spaces ignored).
func lookup(model string) (CorePower, bool) {
	model = strings.Join(strings.Fields(model), " ")
	for _, e := range Table {
		if e.Model == model {
			return e, true
		}
	}
	return CorePower{}, false
}

// cpuModel returns the first "model name" of cpuinfo in fsys ("" when there is none).
func cpuModel(fsys fs.FS) string {
	f, err := fsys.Open("cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
