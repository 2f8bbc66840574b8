// Package nvml is lemctl's energy plugin for NVIDIA GPUs, read through NVML (go-nvml).
//
// It reports one domain per selected GPU, identified by the GPU's UUID ("nvml:GPU-…"), kind gpu,
// scope device. The device set is the plugin's `devices` setting when given, else the
// CUDA_VISIBLE_DEVICES the plugin inherited from its worker (indices or UUIDs, parsed the way the
// CUDA runtime parses it), else every GPU. Energy comes from the GPU's own energy counter
// (nvmlDeviceGetTotalEnergyConsumption, mJ since the driver loaded; Volta and newer) where the
// device has one (method counter); otherwise it integrates the instant power field
// (NVML_FI_DEV_POWER_INSTANT, method power_integration, confidence measured), and only where
// that is missing too the ~1 s moving average of nvmlDeviceGetPowerUsage (confidence averaged).
// Sampling, wrap/reset correction, integration, marks and counter_stuck come from the sdk's
// sampler; this package adds the GPU health codes (throttled, foreign_gpu_process,
// persistence_mode_off) and the per-GPU environment. Its samples carry instant power and
// temperature, from which the host judges counter_integration_mismatch and temperature_drift
// over the measured window with its [validity] thresholds.
//
// It must never:
//   - make any NVML call after nvmlInit failed: go-nvml binds C symbols lazily, and a call into a
//     library that was never loaded kills the process, so a Driver is used only after Init
//     succeeded (the hashicorp/nomad-device-nvidia pattern: the plugin's logic sees NVML through
//     the small Driver interface of plain values, and only driver_nvml.go calls go-nvml);
//   - load a second NVML library into a process that already loaded one (symbols stay bound to
//     the first), so the library is chosen once per process;
//   - report a GPU it cannot read as zero energy: no library, no driver, no GPU or a device with
//     neither counter nor power reading is an unavailable domain with the reason;
//   - present integrated moving-average power as a measurement: it is labelled averaged;
//   - write to standard output (go-plugin's handshake channel); logs go to stderr via hclog.
package nvml
