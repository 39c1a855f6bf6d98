// Rotates one head of LLaMA shape and undoes it: exits 0 when rotary was found and works.
#include <rotary/rotary.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    rotary::rope_table<float> table(128, 16);
    std::vector<float> q(128);
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.1f * static_cast<float>(i));
    const std::vector<float> original = q;
    rotary::heads_view<float> view(q.data(), 1, 1, 128);
    rotary::apply(table, rotary::layout::half_split, view, rotary::positions::starting_at(5));
    rotary::apply(table, rotary::layout::half_split, view, rotary::positions::starting_at(5), {rotary::direction::inverse});
    double err = 0;
    for (std::size_t i = 0; i < q.size(); ++i) err = std::fmax(err, std::fabs(q[i] - original[i]));
    std::printf("rotary %d.%d.%d consumed; round trip error %.3g\n", ROTARY_VERSION_MAJOR, ROTARY_VERSION_MINOR,
                ROTARY_VERSION_PATCH, err);
    return err < 1e-5 ? 0 : 1;
}
