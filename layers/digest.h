// OCI content digests: sha256 through OpenSSL's libcrypto, streamed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace layerfs {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  // "sha256:<64 hex digits>"
  std::string digest();

  static std::string of(std::string_view data);

 private:
  void* ctx_;
};

// A ChainID from DiffIDs, base first (OCI image spec: ChainID(L0) = DiffID(L0),
// ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))).
std::string chain_id(const std::vector<std::string>& diff_ids);

}  // namespace layerfs
