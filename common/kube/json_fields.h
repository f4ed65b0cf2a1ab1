// Reading fields of JSON that came from outside (an admission review, a Pod) without ever
// throwing: nlohmann's value() and get<>() throw on a wrong type, and one throw can end a process
// that serves every pod in the cluster. Go writes a nil field as null, so null reads as absent.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace tideslice::kube {

// obj[key] when obj is an object holding the key with a non-null value; else nullptr (also for
// a null obj, so lookups chain: Child(Child(&pod, "metadata"), "annotations")).
inline const nlohmann::json* Child(const nlohmann::json* obj, std::string_view key) {
  if (!obj || !obj->is_object()) return nullptr;
  auto it = obj->find(key);
  if (it == obj->end() || it->is_null()) return nullptr;
  return &*it;
}
inline const nlohmann::json* Child(const nlohmann::json& obj, std::string_view key) { return Child(&obj, key); }

// An optional string field: absent or null leaves `out` as it is; any other type is an error on
// the field "<where>.<key>".
inline Status ReadString(const nlohmann::json& obj, std::string_view key, std::string& out, const std::string& where) {
  const nlohmann::json* v = Child(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_string()) return Status::InvalidArgument(where + "." + std::string(key), "must be a string");
  out = v->get_ref<const std::string&>();
  return Status::Ok();
}

// The string at obj[key], or `fallback` when it is absent or not a string.
inline std::string StringOr(const nlohmann::json* obj, std::string_view key, std::string fallback = "") {
  const nlohmann::json* v = Child(obj, key);
  return v && v->is_string() ? v->get_ref<const std::string&>() : fallback;
}

}  // namespace tideslice::kube
