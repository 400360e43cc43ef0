// Threefry-2x32 (20 rounds), the hash behind jax.random, as one XLA:CPU FFI kernel.
//
// The same function as JAX's own CPU lowering (jax/_src/random/threefry2x32.py): the key
// schedule ks = (k1, k2, k1 ^ k2 ^ 0x1BD11BDA), five groups of four rounds with the rotations
// (13, 15, 26, 6) and (17, 29, 16, 24) in turn, the key injected after each group. JAX lowers it
// on CPU as a rolled loop of five iterations per draw, and every such loop is a while loop XLA
// compiles on its own; this kernel is one custom call instead. Integer arithmetic only, so its
// bits are JAX's exactly. All four operands arrive broadcast to the output's shape.
#include <cstddef>
#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline uint32_t RotateLeft(uint32_t v, uint32_t r) { return (v << r) | (v >> (32 - r)); }

template <uint32_t R0, uint32_t R1, uint32_t R2, uint32_t R3>
inline void FourRounds(uint32_t& x0, uint32_t& x1) {
  x0 += x1; x1 = RotateLeft(x1, R0); x1 ^= x0;
  x0 += x1; x1 = RotateLeft(x1, R1); x1 ^= x0;
  x0 += x1; x1 = RotateLeft(x1, R2); x1 ^= x0;
  x0 += x1; x1 = RotateLeft(x1, R3); x1 ^= x0;
}

// Built for the machine's widest vectors, chosen when the library loads (GCC's target_clones).
__attribute__((target_clones("avx512f", "avx2", "default"))) void Hash(
    size_t n, const uint32_t* __restrict__ k1, const uint32_t* __restrict__ k2,
    const uint32_t* __restrict__ c1, const uint32_t* __restrict__ c2, uint32_t* __restrict__ y1,
    uint32_t* __restrict__ y2) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t a = k1[i], b = k2[i], c = a ^ b ^ 0x1BD11BDAu;
    uint32_t x0 = c1[i] + a, x1 = c2[i] + b;
    FourRounds<13, 15, 26, 6>(x0, x1);
    x0 += b; x1 += c + 1u;
    FourRounds<17, 29, 16, 24>(x0, x1);
    x0 += c; x1 += a + 2u;
    FourRounds<13, 15, 26, 6>(x0, x1);
    x0 += a; x1 += b + 3u;
    FourRounds<17, 29, 16, 24>(x0, x1);
    x0 += b; x1 += c + 4u;
    FourRounds<13, 15, 26, 6>(x0, x1);
    x0 += c; x1 += a + 5u;
    y1[i] = x0;
    y2[i] = x1;
  }
}

ffi::Error Threefry2x32(ffi::Buffer<ffi::U32> key1, ffi::Buffer<ffi::U32> key2,
                        ffi::Buffer<ffi::U32> count1, ffi::Buffer<ffi::U32> count2,
                        ffi::ResultBuffer<ffi::U32> out1, ffi::ResultBuffer<ffi::U32> out2) {
  Hash(count1.element_count(), key1.typed_data(), key2.typed_data(), count1.typed_data(),
       count2.typed_data(), out1->typed_data(), out2->typed_data());
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GravityThreefry2x32, Threefry2x32,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Ret<ffi::Buffer<ffi::U32>>()
                                  .Ret<ffi::Buffer<ffi::U32>>());
