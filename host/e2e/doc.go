// Package e2e holds lemctl's end-to-end tests: the real lemctl binary runs experiments with real
// plugin binaries (the sdk's example plugins and the product plugins) as subprocesses, and the
// tests check known answers — exact token counts, the ground-truth energy of the scriptable meter,
// signal handling and partial failures. It has no non-test code.
package e2e
