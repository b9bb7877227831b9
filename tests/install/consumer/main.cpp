// Uses the installed library the way an application would: reads a model folder's transformer config and builds the
// transformer it describes, then turns a sketch into the scribble map the ControlNet sees.
//   sprint-consumer MODEL_FOLDER
#include <cstdio>
#include <exception>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/scribble.h"
#include "sprint/transformer.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sprint-consumer MODEL_FOLDER\n");
    return 2;
  }
  try {
    const auto config = sprint::TransformerConfig::load(std::string(argv[1]) + "/transformer");
    sprint::SanaTransformer2DModel model(config);
    int64_t parameters = 0;
    for (const auto& p : model->parameters()) parameters += p.numel();
    auto sketch = torch::full({64, 64, 3}, 255, torch::kUInt8);
    sketch.narrow(0, 20, 4).fill_(0);
    const auto map = sprint::sketch_to_scribble(sketch, 2);
    std::printf("transformer: %d layers, %lld parameters; scribble map %lldx%lld with %lld lit pixels\n",
                config.num_layers, static_cast<long long>(parameters), static_cast<long long>(map.size(1)),
                static_cast<long long>(map.size(0)), static_cast<long long>((map > 0).sum().item<int64_t>()));
    return parameters > 0 && (map > 0).sum().item<int64_t>() > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-consumer: error: %s\n", sprint::message_of(e).c_str());
    return 1;
  }
}
