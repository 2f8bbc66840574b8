package stats

// ParetoMin returns, in input order, the indices of the rows of objs that no other row
// dominates, every objective being minimised (negate one to maximise it). Row q dominates row p
// when q is no worse in every objective and better in at least one; equal rows do not dominate
// each other, so both stay. A row holding NaN is never on the set and dominates nothing.
func ParetoMin(objs [][]float64) []int {
	out := []int{}
	for p := range objs {
		if hasNaN(objs[p]) {
			continue
		}
		dominated := false
		for q := range objs {
			if q != p && !hasNaN(objs[q]) && dominates(objs[q], objs[p]) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, p)
		}
	}
	return out
}

func dominates(q, p []float64) bool {
	better := false
	for i := range q {
		if q[i] > p[i] {
			return false
		}
		if q[i] < p[i] {
			better = true
		}
	}
	return better
}

func hasNaN(x []float64) bool {
	for _, v := range x {
		if v != v {
			return true
		}
	}
	return false
}
