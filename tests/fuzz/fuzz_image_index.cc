// libFuzzer: an OCI layout's index.json and a docker archive's manifest.json, with every blob
// they name answered by the same bytes (so manifests, nested indexes and configs are parsed too).
#include <cstddef>
#include <cstdint>
#include <string>

#include "layers/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string doc(reinterpret_cast<const char*>(data), size);
  int reads = 0;
  layerfs::ReadMember read = [&](const std::string&) -> layerfs::Result<std::string> {
    if (++reads > 64) return layerfs::failure(ELOOP, "too many");
    return doc;
  };
  (void)layerfs::resolve_oci(read, "", "fuzz");
  reads = 0;
  (void)layerfs::resolve_oci(read, "latest", "fuzz");
  reads = 0;
  (void)layerfs::resolve_docker(read, "", "fuzz");
  return 0;
}
