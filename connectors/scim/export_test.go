package scim

// PatchStreams is patchStreams, for the benchmark's baseline.
const PatchStreams = patchStreams
