// Applying a mutating webhook's answer to the pod it was about, as the API server does: the
// base64 JSON patch of an AdmissionReview response. Header-only; link OpenSSL::Crypto.
#pragma once

#include <openssl/evp.h>

#include <nlohmann/json.hpp>
#include <string>

namespace tideslice::testsupport {

// `answer` is the AdmissionReview the webhook returned; a response without a patch leaves the pod
// as it is. Throws (failing the test) if the patch does not apply.
inline nlohmann::json ApplyAdmissionPatch(const nlohmann::json& pod, const nlohmann::json& answer) {
  const auto& response = answer.at("response");
  if (!response.contains("patch")) return pod;
  const std::string b64 = response["patch"];
  std::string raw(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()), reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  raw.resize(static_cast<size_t>(n < 0 ? 0 : n));
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();  // EVP_DecodeBlock pads to whole blocks
  return pod.patch(nlohmann::json::parse(raw));
}

}  // namespace tideslice::testsupport
