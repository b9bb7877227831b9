// Reading pictures of any common format: JPEG, PNG, WebP, BMP and TIFF, told apart by their first bytes (never by the
// file name), decoded by OpenCV to 8-bit RGB. What the training data reader and the app's import share.
//
// Each picture is probed first: our own reader of its header (PNG IHDR, JPEG frame header and Exif orientation, WebP
// VP8 / VP8L / VP8X, BMP and TIFF headers) gives its size from a few small reads. Why our own: OpenCV 4 checks decoded
// sizes only against OPENCV_IO_MAX_IMAGE_PIXELS, an environment variable read once per process (default 2^30), which
// a library cannot set per call, and its decoder classes, which read headers, are internal. So a picture over the
// pixel limit is refused before any pixel memory exists (a 100000 x 100000 PNG can be a few bytes), and decoding
// checks that the decoder saw the size the header gave (no picture gets past the limit with a lying header).
// Probing is also how a scan of many files learns their sizes: a few small reads where decoding takes the whole file
// and milliseconds to a second of CPU (measured on 300 JPEGs of 1152 x 864, one thread, warm page cache: 35 us a file
// against 8 ms decoding; for 100k files 3 s against 14 min).
//
// Reading a PNG's text chunks (generation settings) is image_io.h's read_png; this reads pixels only.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "sprint/image_io.h"

namespace sprint {

struct PictureHeader {
  std::string format;             // "JPEG", "PNG", "WebP", "BMP" or "TIFF"
  int64_t width = 0, height = 0;  // as stored, before the orientation
  int orientation = 1;            // Exif orientation 1..8 (a JPEG's Exif block; 1 for the other formats)

  // The size as shown: orientations 5..8 turn the picture a quarter, swapping width and height.
  int64_t shown_width() const { return orientation >= 5 ? height : width; }
  int64_t shown_height() const { return orientation >= 5 ? width : height; }
};

// The header of the picture in `bytes`. Throws sprint::Error "<what>: <why>" when it is none of the five formats,
// is cut inside its header, declares an empty size, is an animated WebP, or declares more than `max_pixels` pixels.
PictureHeader probe_picture(std::string_view bytes, const std::string& what,
                            int64_t max_pixels = kDefaultMaxImagePixels);

// The same from the file at `path`, reading only the header's bytes (a JPEG's markers up to its frame header), never
// the whole file. Throws "<what>: <why>" also when the file does not exist, is not a regular file (a FIFO would block)
// or cannot be opened.
PictureHeader probe_picture_file(const std::string& path, const std::string& what,
                                 int64_t max_pixels = kDefaultMaxImagePixels);

// The picture in `bytes` as shown: (H, W, 3) uint8 RGB, H x W its shown size. A JPEG is turned by its Exif
// orientation (the probe's, so the size a scan saw and the decoded picture agree); gray is spread to RGB; alpha is
// composited on white ((c * a + 255 * (255 - a)) / 255, rounded: transparent pixels have no colour, and the project's
// pictures are drawn on white); 16-bit samples are scaled to 8 (v / 257, rounded). Refused from the header, before
// decoding, when it declares more than `max_pixels` pixels. Throws "<what>: <why>" for whatever probe_picture
// refuses, data OpenCV cannot decode (corrupt or truncated), or a decoded size other than the header's.
torch::Tensor decode_picture(std::string_view bytes, const std::string& what,
                             int64_t max_pixels = kDefaultMaxImagePixels);

// decode_picture of the file at `path`, read whole by read_small_file (config.h: a regular file only), naming the
// file in every error. A file larger than the biggest the pixel limit admits is refused without being read: the
// limit's picture stored uncompressed at 8 bytes a pixel (16-bit RGBA, the widest samples of these formats) plus
// 16 MiB for metadata (Exif thumbnails, ICC profiles); 528 MiB at the default limit. Nothing legitimate is larger,
// and nothing larger is read into memory on the strength of its name.
torch::Tensor read_picture(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);

}  // namespace sprint
