// The CUDA driver API types the limiter's hooks need, written from the published ABI (restated
// with sources in docs/isolation.md, "CUDA facts"): LP64 layouts, 4-byte enums.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace tideslice::limiter::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void*;
using CUstream = void*;
using CUarray = void*;
using CUmipmappedArray = void*;
using CUmemoryPool = void*;
using CUfunction = void*;
using CUmemGenericAllocationHandle = unsigned long long;

inline constexpr CUresult kSuccess = 0;
inline constexpr CUresult kInvalidValue = 1;
inline constexpr CUresult kOutOfMemory = 2;
inline constexpr CUresult kNotInitialized = 3;
inline constexpr CUresult kNotSupported = 801;

inline constexpr int kMemLocationDevice = 1;
inline constexpr int kPoolAttrReservedMemCurrent = 5;
inline constexpr uint64_t kProcAddressPerThread = 2;

struct MemLocation {
  int type;
  int id;
};
struct MemAllocationProp {
  int type;
  int requested_handle_types;
  MemLocation location;
  void* win32_handle_metadata;
  unsigned char compression_type, gpu_direct_rdma_capable;
  unsigned short usage;
  unsigned char reserved[4];
};
static_assert(sizeof(MemAllocationProp) == 32);

struct MemPoolProps {
  int alloc_type;
  int handle_types;
  MemLocation location;
  void* win32_security_attributes;
  size_t max_size;
  unsigned short usage;
  unsigned char reserved[54];
};
static_assert(sizeof(MemPoolProps) == 88);

struct ArrayDescriptor {
  size_t width;
  size_t height;
  int format;
  unsigned num_channels;
};
static_assert(sizeof(ArrayDescriptor) == 24);

struct Array3DDescriptor {
  size_t width;
  size_t height;
  size_t depth;
  int format;
  unsigned num_channels;
  unsigned flags;
};
static_assert(sizeof(Array3DDescriptor) == 40);

// Config card of a CUDA device ordinal (by the physical card's UUID, else the visible index).
int CardOfDevice(CUdevice dev);

// Lower bound of an array's bytes (the driver pads and tiles; it does not report the size of an
// ordinary array): width × height × depth × channels × element size, per mip level.
uint64_t ArrayBytes(size_t width, size_t height, size_t depth, int format, unsigned channels, unsigned levels);

}  // namespace tideslice::limiter::cuda
