// GGUF reader/writer and the storage number formats: exact round trips, llama.cpp's layout rules,
// and hostile input (every malformed file must give heirloom::Error, never a crash).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>

#include "core/half.h"
#include "heirloom/error.h"
#include "io/gguf.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

using namespace heirloom;
using namespace heirloom::gguf;
namespace fs = std::filesystem;

namespace {

// Hand-assembles GGUF bytes so tests can inject any malformed field.
struct Raw {
  std::vector<uint8_t> b;
  template <class T>
  Raw& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Raw& str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(int64_t n_tensors, int64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put<uint32_t>(version).put<int64_t>(n_tensors).put<int64_t>(n_kv);
  }
  Raw& tensor(std::string_view name, std::vector<int64_t> ne, int32_t type, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne) put<int64_t>(d);
    return put<int32_t>(type).put<uint64_t>(offset);
  }
  Raw& pad(size_t a = 32) {
    b.resize((b.size() + a - 1) / a * a, 0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

// Expects read_bytes to throw heirloom::Error whose message contains every fragment.
void expect_error(std::vector<uint8_t> bytes, std::initializer_list<std::string_view> fragments) {
  try {
    read_bytes(std::move(bytes), "bad.gguf");
    ADD_FAILURE() << "expected heirloom::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
    for (std::string_view f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
    EXPECT_FALSE(e.hint().empty()) << msg;
  }
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  return h;
}

// A small valid file: a few keys and two tensors, the last one ending exactly at a 32-byte boundary.
struct Sample {
  std::vector<float> a = random_floats(15, 1);            // [5, 3] F32: 60 bytes -> padded to 64
  std::vector<uint16_t> h = to_f16(random_floats(16, 2));  // [16] F16: 32 bytes
  Writer w;
  Sample() {
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 2);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "a", "\xE2\x96\x81" "b"});
    w.set_i32_array("ids", {1, -2, 3});
    w.add_tensor("w.weight", {5, 3}, TensorType::F32, a.data(), a.size() * 4);
    w.add_tensor("h.weight", {16}, TensorType::F16, h.data(), h.size() * 2);
  }
};

}  // namespace

// ---------- number formats ----------

TEST(Half, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);  // below the half-way point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // the half-way point ties to even = inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 1 ulp -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie -> even (2)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);        // tie -> even mantissa 0
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);    // tie -> even mantissa 2
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);  // above tie
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);

  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7C00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
    } else {
      ASSERT_EQ(f32_to_f16(f), h) << h;
    }
  }
}

#if defined(__F16C__)
TEST(Half, MatchesHardwareConversion) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns cover subnormals, overflow, ties and NaNs.
    const uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    const uint16_t hw = static_cast<uint16_t>(_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), 0), 0));
    if (std::isnan(f)) continue;  // NaN payload choices differ; NaN-ness is tested above
    ASSERT_EQ(f32_to_f16(f), hw) << std::hex << bits;
  }
}
#endif

TEST(Half, Bfloat16) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-1.0f), 0xBF80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC040), -3.0f);
  for (float x : random_floats(1000, 3, 100.0f)) {
    EXPECT_LE(std::fabs(bf16_to_f32(f32_to_bf16(x)) - x), std::fabs(x) * std::ldexp(1.0f, -8));
  }
}

TEST(Half, Q8_0QuantizeDequantize) {
  const int64_t n = 128;
  std::vector<float> x = random_floats(n, 4, 2.0f);
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;  // an all-zero block must give scale 0 and zeros back
  x[70] = -9.0f;                               // a block whose amax is negative
  std::vector<uint8_t> q(n / 32 * 34);
  quantize_row_q8_0(x.data(), q.data(), n);
  std::vector<float> y(n);
  dequantize_row(TensorType::Q8_0, q.data(), y.data(), n);
  for (int b = 0; b < n / 32; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    uint16_t dh;
    std::memcpy(&dh, q.data() + b * 34, 2);
    EXPECT_EQ(dh, f32_to_f16(d)) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      // Half a step, plus the f16 rounding of the scale times at most 127 steps.
      EXPECT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), 0.5f * d + 127.0f * d * std::ldexp(1.0f, -11) + 1e-7f);
    }
  }
  EXPECT_EQ(static_cast<int8_t>(q[2 * 34 + 2 + 6]), -127);  // x[70] is the amax of block 2
  for (int j = 32; j < 64; ++j) EXPECT_EQ(y[j], 0.0f);
}

TEST(Half, DequantizeRowF16AndBf16) {
  const std::vector<float> x = random_floats(37, 5);  // odd length exercises the SIMD tail
  const std::vector<uint16_t> h = to_f16(x);
  std::vector<float> y(x.size());
  dequantize_row(TensorType::F16, reinterpret_cast<const uint8_t*>(h.data()), y.data(), 37);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], f16_to_f32(h[i]));
  std::vector<uint8_t> b(x.size() * 2);
  quantize_row(TensorType::BF16, x.data(), b.data(), 37);
  dequantize_row(TensorType::BF16, b.data(), y.data(), 37);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], bf16_to_f32(f32_to_bf16(x[i])));
}

// ---------- round trips ----------

TEST(Gguf, RoundTripEveryValueType) {
  Writer w;
  w.set_u8("u8", 200);
  w.set_i8("i8", -100);
  w.set_u16("u16", 60000);
  w.set_i16("i16", -30000);
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -2000000000);
  w.set_f32("f32", 3.25f);
  w.set_bool("bool_t", true);
  w.set_bool("bool_f", false);
  w.set_string("str", std::string("h\0llo \xE2\x96\x81", 10));
  w.set_u64("u64", 0xFEDCBA9876543210ull);
  w.set_i64("i64", std::numeric_limits<int64_t>::min());
  w.set_f64("f64", -1.0e300);
  w.set("a_u8", Value{Array{std::vector<uint8_t>{0, 255}}});
  w.set("a_i8", Value{Array{std::vector<int8_t>{-128, 127}}});
  w.set("a_u16", Value{Array{std::vector<uint16_t>{1, 65535}}});
  w.set("a_i16", Value{Array{std::vector<int16_t>{-1, 2}}});
  w.set("a_u32", Value{Array{std::vector<uint32_t>{7, 4294967295u}}});
  w.set_i32_array("a_i32", {-5, 0, 5});
  w.set_f32_array("a_f32", {0.5f, -1e-30f, 1e30f});
  w.set("a_bool", Value{Array{std::vector<bool>{true, false, true}}});
  w.set_string_array("a_str", {"", "x", "\xE2\x96\x81y"});
  w.set("a_u64", Value{Array{std::vector<uint64_t>{1, ~0ull}}});
  w.set("a_i64", Value{Array{std::vector<int64_t>{-1, 1}}});
  w.set("a_f64", Value{Array{std::vector<double>{3.5, -0.0}}});
  w.set_f32_array("empty", {});
  w.set_u32("u32", 17);  // setting twice replaces in place, keeping the first position

  const File f = read_bytes(w.to_bytes());
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  ASSERT_EQ(f.kv.size(), w.kv().size());
  for (size_t i = 0; i < f.kv.size(); ++i) {
    EXPECT_EQ(f.kv[i].key, w.kv()[i].key);
    EXPECT_TRUE(f.kv[i].value == w.kv()[i].value) << f.kv[i].key;
    EXPECT_EQ(f.kv[i].value.type(), w.kv()[i].value.type()) << f.kv[i].key;
  }
  EXPECT_EQ(f.kv[4].key, "u32");
  EXPECT_EQ(f.get_u32("u32"), 17u);
  EXPECT_EQ(f.get_i32("i32"), -2000000000);
  EXPECT_EQ(f.get_u64("u64"), 0xFEDCBA9876543210ull);
  EXPECT_EQ(f.get_f32("f32"), 3.25f);
  EXPECT_TRUE(f.get_bool("bool_t"));
  EXPECT_FALSE(f.get_bool("bool_f"));
  EXPECT_EQ(f.get_string("str"), std::string("h\0llo \xE2\x96\x81", 10));
  EXPECT_EQ(f.get_string_array("a_str"), (std::vector<std::string>{"", "x", "\xE2\x96\x81y"}));
  EXPECT_EQ(f.get_f32_array("a_f32"), (std::vector<float>{0.5f, -1e-30f, 1e30f}));
  EXPECT_EQ(f.get_i32_array("a_i32"), (std::vector<int32_t>{-5, 0, 5}));
  EXPECT_TRUE(f.get_f32_array("empty").empty());
  EXPECT_EQ(std::get<double>(f.find("f64")->v), -1.0e300);
  EXPECT_EQ(std::get<int64_t>(f.find("i64")->v), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(std::get<Array>(f.find("a_bool")->v).elem_type(), ValueType::BOOL);
  EXPECT_EQ(f.find("absent"), nullptr);
  EXPECT_TRUE(f.tensors.empty());
}

TEST(Gguf, TensorsBitExactWithLlamaCppOffsets) {
  const std::vector<float> a = random_floats(15, 11);                       // 60 bytes
  const std::vector<uint16_t> h = to_f16(random_floats(3 * 7, 12));        // 42 bytes
  std::vector<float> qsrc = random_floats(64 * 2, 13);
  std::vector<uint8_t> q(4 * 34);                                          // 136 bytes
  quantize_row_q8_0(qsrc.data(), q.data(), 128);
  std::vector<uint16_t> bf(4);
  for (int i = 0; i < 4; ++i) bf[i] = f32_to_bf16(static_cast<float>(i) - 1.5f);  // 8 bytes

  Writer w;
  w.set_string("general.name", "t");
  w.add_tensor("a", {5, 3}, TensorType::F32, a.data(), 60);
  w.add_tensor("h", {3, 7}, TensorType::F16, h.data(), 42);
  w.add_tensor("q", {64, 2}, TensorType::Q8_0, q.data(), 136);
  w.add_tensor("bf", {1, 2, 1, 2}, TensorType::BF16, bf.data(), 8);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const File f = read_bytes(bytes);

  EXPECT_EQ(f.data_offset % 32, 0u);
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.tensors[0].offset, 0u);
  EXPECT_EQ(f.tensors[1].offset, 64u);         // 60 padded to 64
  EXPECT_EQ(f.tensors[2].offset, 64u + 64u);   // 42 padded to 64
  EXPECT_EQ(f.tensors[3].offset, 128u + 160u); // 136 padded to 160
  EXPECT_EQ(bytes.size(), f.data_offset + 288u + 32u);
  EXPECT_EQ(f.tensors[1].ne, (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(f.tensors[2].type, TensorType::Q8_0);
  EXPECT_EQ(f.tensors[2].nbytes(), 136u);
  EXPECT_EQ(f.tensors[3].numel(), 4);
  EXPECT_EQ(std::memcmp(f.tensor_data(*f.find_tensor("a")), a.data(), 60), 0);
  EXPECT_EQ(std::memcmp(f.tensor_data(*f.find_tensor("h")), h.data(), 42), 0);
  EXPECT_EQ(std::memcmp(f.tensor_data(*f.find_tensor("q")), q.data(), 136), 0);
  EXPECT_EQ(std::memcmp(f.tensor_data(*f.find_tensor("bf")), bf.data(), 8), 0);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  for (uint64_t i = f.data_offset + 60; i < f.data_offset + 64; ++i) EXPECT_EQ(bytes[i], 0) << "padding";
  // The header region ends with zero padding up to the data section.
  const File g = read_bytes(bytes);
  EXPECT_EQ(g.data_offset, f.data_offset);
}

TEST(Gguf, CustomAlignment) {
  const std::vector<float> a = random_floats(3, 21), b = random_floats(5, 22);
  Writer w;
  w.set_u32("general.alignment", 64);
  w.add_tensor("a", {3}, TensorType::F32, a.data(), 12);
  w.add_tensor("b", {5}, TensorType::F32, b.data(), 20);
  const File f = read_bytes(w.to_bytes());
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_offset % 64, 0u);
  EXPECT_EQ(f.tensors[1].offset, 64u);
  EXPECT_EQ(std::memcmp(f.tensor_data(f.tensors[1]), b.data(), 20), 0);
}

TEST(Gguf, TypedGettersAreStrict) {
  Writer w;
  w.set_i32("n", 5);
  w.set_u32("m", 6);
  w.set_i32_array("arr", {1});
  const File f = read_bytes(w.to_bytes(), "model.gguf");
  try {
    f.get_u32("n");
    FAIL() << "wrong type accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'n'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected type u32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("found i32"), std::string::npos) << msg;
  }
  try {
    f.get_f32_array("arr");
    FAIL() << "wrong array type accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected type array of f32, found array of i32"), std::string::npos)
        << e.what();
  }
  try {
    f.get_string("missing.key");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing key 'missing.key'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.get_u32("m"), 6u);
  EXPECT_EQ(f.get_u32("absent", 7u), 7u);
  EXPECT_EQ(f.get_string("absent", "dflt"), "dflt");
  EXPECT_EQ(f.get_f32_array("absent", {1.5f}), std::vector<float>{1.5f});
  EXPECT_THROW(f.get_u32("n", 1u), Error);  // a default forgives a missing key, not a wrong type
  EXPECT_THROW(f.get_bool("m"), Error);
}

// ---------- files on disk ----------

class GgufFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("heirloom_gguf_test_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  size_t n_entries(const fs::path& p) const { return std::distance(fs::directory_iterator(p), fs::directory_iterator()); }
  fs::path dir;
};

TEST_F(GgufFiles, WriteReadAndAtomicReplace) {
  const std::string path = (dir / "m.gguf").string();
  Sample s1;
  s1.w.write(path);
  const File f1 = read_file(path);
  EXPECT_EQ(f1.path, path);
  const std::vector<uint8_t> want = s1.w.to_bytes();
  EXPECT_TRUE(f1.bytes.mapped());  // read_file maps the file rather than copying it
  EXPECT_EQ(std::vector<uint8_t>(f1.bytes.data(), f1.bytes.data() + f1.bytes.size()), want);

  Writer w2;
  w2.set_string("general.name", "second");
  w2.write(path);  // replaces the existing file
  const File f2 = read_file(path);
  EXPECT_EQ(f2.get_string("general.name"), "second");
  // The earlier mapping still shows the file it mapped: the replacement was a rename, not a rewrite.
  EXPECT_EQ(std::vector<uint8_t>(f1.bytes.data(), f1.bytes.data() + f1.bytes.size()), want);
  EXPECT_TRUE(f2.tensors.empty());
  EXPECT_EQ(n_entries(dir), 1u) << "a temporary file was left behind";
}

TEST_F(GgufFiles, FailedWriteLeavesNothing) {
  Sample s;
  const fs::path missing = dir / "no_such_dir" / "m.gguf";
  EXPECT_THROW(s.w.write(missing.string()), Error);
  EXPECT_FALSE(fs::exists(dir / "no_such_dir"));
  EXPECT_EQ(n_entries(dir), 0u);

  // The target is a directory: the temp file is written, the rename fails, and it must be removed.
  const fs::path target = dir / "taken";
  fs::create_directories(target / "inner");
  try {
    s.w.write(target.string());
    FAIL() << "rename over a directory succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rename"), std::string::npos) << e.what();
  }
  EXPECT_EQ(n_entries(dir), 1u) << "a temporary file was left behind";
  EXPECT_TRUE(fs::is_directory(target / "inner"));
}

TEST_F(GgufFiles, ReadFileErrors) {
  EXPECT_THROW(read_file((dir / "absent.gguf").string()), Error);
  EXPECT_THROW(read_file(dir.string()), Error);
  const fs::path empty = dir / "empty.gguf";
  { std::FILE* fp = std::fopen(empty.c_str(), "wb"); std::fclose(fp); }
  try {
    read_file(empty.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
}

// ---------- hostile input ----------

TEST(GgufBad, HeaderErrors) {
  expect_error({}, {"magic", "empty file"});
  expect_error({'G', 'G', 'M', 'L', 3, 0, 0, 0}, {"magic", "47 47 4d 4c"});
  expect_error(Raw().header(0, 0, 99).b, {"version", "99"});
  expect_error(Raw().header(0, 0, 1).b, {"version"});
  expect_error(Raw().header(int64_t{1} << 40, 0).b, {"tensor count", std::to_string(int64_t{1} << 40)});
  expect_error(Raw().header(-1, 0).b, {"tensor count"});
  expect_error(Raw().header(0, int64_t{1} << 40).b, {"key-value count"});
  // Plausible counts that the remaining bytes cannot hold.
  expect_error(Raw().header(1000, 0).zeros(100).b, {"tensor count"});
}

TEST(GgufBad, HugeLengthsAreRejectedBeforeAllocating) {
  expect_error(Raw().header(0, 1).put<uint64_t>(uint64_t{1} << 60).zeros(16).b,
               {"key-value 0 key length", "at most 16", "found 1152921504606846976"});
  expect_error(Raw().header(0, 1).str("k").put<int32_t>(8).put<uint64_t>(uint64_t{1} << 60).b, {"'k'"});
  expect_error(Raw().header(0, 1).str("k").put<int32_t>(9).put<int32_t>(4).put<uint64_t>(uint64_t{1} << 62).b,
               {"'k' count"});
  expect_error(Raw().header(0, 1).str("k").put<int32_t>(9).put<int32_t>(8).put<uint64_t>(2).str("a")
                   .put<uint64_t>(100).b,
               {"'k'[1]", "100"});
  expect_error(Raw().header(0, 1).str("k").put<int32_t>(13).zeros(8).b, {"value type", "13"});
  expect_error(Raw().header(0, 1).str("k").put<int32_t>(9).put<int32_t>(9).put<uint64_t>(0).b, {"array of arrays"});
  expect_error(Raw().header(1, 0).str(std::string(64, 'x')).zeros(40).b, {"name length", "64"});
}

TEST(GgufBad, TensorInfoErrors) {
  auto one = [](std::vector<int64_t> ne, int32_t type, uint64_t offset = 0, size_t data = 4096) {
    return Raw().header(1, 0).tensor("t", std::move(ne), type, offset).pad().zeros(data).b;
  };
  expect_error(Raw().header(1, 0).str("t").put<uint32_t>(7).zeros(64).b, {"n_dims", "7"});
  expect_error(Raw().header(1, 0).str("t").put<uint32_t>(0).zeros(64).b, {"n_dims", "0"});
  expect_error(one({4, 0}, 0), {"ne >= 1", "ne[1] = 0"});
  expect_error(one({4, -3}, 0), {"ne[1] = -3"});
  expect_error(one({1 << 20, 1 << 20, 1 << 20}, 0), {"2^40"});
  expect_error(one({std::numeric_limits<int64_t>::max(), 2}, 0), {"2^40"});
  expect_error(one({32}, 2), {"type id 2"});  // Q4_0: not supported, named by id
  expect_error(one({33}, 8), {"multiple of 32", "33"});
  expect_error(one({4}, 0, 32), {"offset", "found 32"});
  expect_error(one({1024}, 0, 0, 100), {"'t' data", "expected bytes"});  // data past the end
  expect_error(Raw().header(2, 0).tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).pad().zeros(64).b,
               {"duplicate"});
  expect_error(Raw().header(0, 1).str("general.alignment").put<int32_t>(4).put<uint32_t>(48).b,
               {"power of two", "48"});
  expect_error(Raw().header(0, 1).str("general.alignment").put<int32_t>(5).put<int32_t>(32).b, {"u32", "i32"});
  expect_error(Raw().header(0, 2).str("k").put<int32_t>(0).put<uint8_t>(1).str("k").put<int32_t>(0).put<uint8_t>(2).b,
               {"unique keys"});
}

TEST(GgufBad, HandMadeValidFileParses) {
  // Guards the Raw helper: the same construction with good fields must load.
  auto b = Raw().header(1, 1).str("general.alignment").put<int32_t>(4).put<uint32_t>(32)
               .tensor("t", {8}, 0, 0).pad().zeros(32).b;
  const File f = read_bytes(b);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].nbytes(), 32u);
}

TEST(GgufBad, EveryTruncationIsAnError) {
  Sample s;
  const std::vector<uint8_t> full = s.w.to_bytes();
  const File f = read_bytes(full);
  const TensorInfo& last = f.tensors.back();
  const size_t needed = f.data_offset + last.offset + last.nbytes();
  ASSERT_EQ(needed, full.size());
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      read_bytes(std::move(cut));
      ADD_FAILURE() << "a file truncated to " << n << " of " << full.size() << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected"), std::string::npos) << e.what();
    }
  }
}

TEST(GgufBad, RandomByteFlipsOnlyEverThrowError) {
  Sample s;
  const std::vector<uint8_t> full = s.w.to_bytes();
  std::mt19937 rng(1234);
  int n_ok = 0, n_err = 0;
  for (int it = 0; it < 2000; ++it) {
    std::vector<uint8_t> b = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly inside the header, where the structure is; sometimes anywhere.
      const size_t limit = (rng() % 4) ? std::min<size_t>(b.size(), 200) : b.size();
      b[rng() % limit] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    try {
      const File f = read_bytes(std::move(b));
      uint64_t sum = 0;  // touch every tensor byte so a bad bound would show under sanitizers
      for (const TensorInfo& t : f.tensors) {
        const uint8_t* p = f.tensor_data(t);
        for (uint64_t i = 0; i < t.nbytes(); ++i) sum += p[i];
      }
      (void)sum;
      ++n_ok;
    } catch (const Error&) {
      ++n_err;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << it << ": non-heirloom exception: " << e.what();
    }
  }
  EXPECT_EQ(n_ok + n_err, 2000);
  EXPECT_GT(n_err, 100);  // most header flips must be caught
}

TEST(GgufWriter, ValidatesTensors) {
  std::vector<float> d(64);
  Writer w;
  w.add_tensor("x", {64}, TensorType::F32, d.data(), 256);
  EXPECT_THROW(w.add_tensor("x", {64}, TensorType::F32, d.data(), 256), Error);  // duplicate
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), {64}, TensorType::F32, d.data(), 256), Error);
  EXPECT_THROW(w.add_tensor("y", {64}, TensorType::F32, d.data(), 255), Error);  // size mismatch
  EXPECT_THROW(w.add_tensor("y", {0}, TensorType::F32, d.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("y", {1, 1, 1, 1, 1}, TensorType::F32, d.data(), 4), Error);
  EXPECT_THROW(w.add_tensor("y", {48}, TensorType::Q8_0, d.data(), 51), Error);
  EXPECT_THROW(w.add_tensor("y", {4}, static_cast<TensorType>(2), d.data(), 16), Error);
  w.set_u32("general.alignment", 3);
  EXPECT_THROW(w.to_bytes(), Error);
}
