// expect_throw_unchanged: a call throws the expected exception, its message names the parameter
// and value, and every buffer listed is bit-for-bit unchanged afterwards (nothing was written).
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace rotary_test {

struct bytes_of {
    const void* p;
    std::size_t n;
};

inline std::vector<std::vector<unsigned char>> snapshot(std::initializer_list<bytes_of> buffers) {
    std::vector<std::vector<unsigned char>> s;
    for (const auto& b : buffers) {
        const auto* c = static_cast<const unsigned char*>(b.p);
        s.emplace_back(c, c + b.n);
    }
    return s;
}

template <class E>
void expect_throw_unchanged(const std::function<void()>& call, std::initializer_list<bytes_of> buffers,
                            const std::vector<std::string>& message_parts) {
    const auto before = snapshot(buffers);
    try {
        call();
        ADD_FAILURE() << "no exception; expected one mentioning '" << message_parts.front() << "'";
    } catch (const E& e) {
        const std::string what = e.what();
        for (const std::string& part : message_parts)
            EXPECT_NE(what.find(part), std::string::npos) << "message '" << what << "' lacks '" << part << "'";
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
    }
    EXPECT_EQ(snapshot(buffers), before) << "a buffer changed although the call threw";
}

template <class T>
bytes_of bytes(const std::vector<T>& v) {
    return {v.data(), v.size() * sizeof(T)};
}

}  // namespace rotary_test
