// The seed's synthetic inheritance protocol (Bet 69). See synthetic.h.
#include "inherit/synthetic.h"

#include <cmath>

#include "core/rng.h"
#include "inherit/merge.h"

namespace heirloom::inherit {

using merge::Vec;

nlohmann::json SyntheticConfig::to_json() const {
  return {{"D", D}, {"lr", lr}, {"gradient_noise_sd", noise}, {"parent_steps", parent_steps}, {"child_steps", child_steps},
          {"big_child_steps", big_child_steps}, {"seeds", seeds}, {"overlaps", overlaps}, {"schemes", schemes},
          {"blend", "lambda weights the parent: lambda*parent + (1-lambda)*child"}};
}

namespace {

double cosine(const Vec& a, const Vec& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

Vec normalised(Vec v) {
  double n = 0;
  for (float x : v) n += (double)x * x;
  for (float& x : v) x = (float)(x / std::sqrt(n));
  return v;
}

Vec sgd(Vec a, const Vec& target, int steps, const SyntheticConfig& c, Rng& rng) {
  for (int s = 0; s < steps; ++s)
    for (int i = 0; i < c.D; ++i) a[i] -= c.lr * ((a[i] - target[i]) + c.noise * rng.normal());
  return a;
}

}  // namespace

Synthetic synthetic_inheritance(const SyntheticConfig& c) {
  Synthetic out;
  for (double ov : c.overlaps) {
    for (const std::string& sc : c.schemes) {
      double pq = 0, cq = 0, pr = 0, cr = 0, child_alone = 0, scratch_p = 0, scratch_c = 0, task_cos = 0;
      for (int s = 1; s <= c.seeds; ++s) {
        Rng rng((uint64_t)s * 7919 + (uint64_t)(ov * 100));
        Vec tp(c.D), o(c.D);
        for (auto& x : tp) x = rng.normal();
        for (auto& x : o) x = rng.normal();
        tp = normalised(tp);
        double d = 0;
        for (int i = 0; i < c.D; ++i) d += (double)o[i] * tp[i];
        for (int i = 0; i < c.D; ++i) o[i] -= (float)(d * tp[i]);
        o = normalised(o);
        Vec tc(c.D);
        for (int i = 0; i < c.D; ++i) tc[i] = (float)(ov * tp[i] + (1 - ov) * o[i]);
        tc = normalised(tc);
        const Vec zero(c.D, 0.f);
        const Vec parent = sgd(zero, tp, c.parent_steps, c, rng), child = sgd(zero, tc, c.child_steps, c, rng), big = sgd(zero, tc, c.big_child_steps, c, rng);
        Vec heir;
        double q_parent_domain, q_child_domain;
        const float arg = sc.find(':') != std::string::npos ? std::stof(sc.substr(sc.find(':') + 1)) : 0.f;
        if (sc == "concat") {  // both adapters kept, each domain routed to its own (2x memory)
          q_parent_domain = cosine(parent, tp);
          q_child_domain = cosine(child, tc);
        } else {
          if (sc == "linear") heir = merge::linear({&parent, &child});
          else if (sc.rfind("blend", 0) == 0) heir = merge::blend(parent, child, arg);
          else if (sc.rfind("taskvec", 0) == 0) heir = merge::task_vector(parent, child, arg);
          else if (sc == "distill") heir = sgd(parent, tc, c.child_steps, c, rng);
          else if (sc.rfind("ties", 0) == 0) heir = merge::ties({&parent, &child}, arg);
          else heir = merge::dare({&parent, &child}, arg, (uint64_t)s);
          q_parent_domain = cosine(heir, tp);
          q_child_domain = cosine(heir, tc);
        }
        pq += q_parent_domain;
        cq += q_child_domain;
        pr += q_parent_domain / cosine(parent, tp);
        cr += q_child_domain / cosine(big, tc);
        child_alone += cosine(child, tc) / cosine(big, tc);
        scratch_p += cosine(child, tp);  // the child trained from scratch, on each domain
        scratch_c += cosine(child, tc);
        task_cos += cosine(parent, child);
      }
      out.table[std::to_string(ov).substr(0, 3)][sc] = {{"parent_q_mean", pq / c.seeds}, {"child_q_mean", cq / c.seeds},
                                                     {"parent_ratio", pr / c.seeds}, {"child_ratio", cr / c.seeds},
                                                     {"child_from_scratch_ratio", child_alone / c.seeds},
                                                     {"scratch_parent_q_mean", scratch_p / c.seeds},
                                                     {"scratch_child_q_mean", scratch_c / c.seeds}};
      out.task_cosine[std::to_string(ov).substr(0, 3)] = task_cos / c.seeds;
    }
  }
  return out;
}

}  // namespace heirloom::inherit
