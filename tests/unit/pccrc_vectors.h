// The Windows-captured Content Information vectors of ../shared/vectors/pccrc.md, shared by
// the tests that reproduce them (test_pccrc.cpp) and build on them (test_pccrr.cpp).
#pragma once

namespace pdtest::pccrc_vectors {

// V1: one segment of two blocks (99,710 bytes), SHA-256.
inline const char *v1_hex =
    "00010c80000000000000000000000100000000000000000000007e85010000000100"
    "d8d976354a4872e925761803f458d9daaa67f8e31c630fb74e6a312ef8a25aba"
    "11afc0d7949243f94f9c1fab35d9fd1e331fcf7811a2e01d3587b38d770a29e2"
    "02000000"
    "73c18ab8549110f8e90e71bbc3ab2aa8c44d13f4929499255b660f24ec77800b"
    "974bdd65567fdeeccdafe457a9503b4548f66ed3b188dcfda0ac382b09711acc";

}  // namespace pdtest::pccrc_vectors
