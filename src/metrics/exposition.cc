#include "metrics/exposition.h"

#include <prometheus/text_serializer.h>

namespace pi0::metrics {

std::string renderText(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace pi0::metrics
