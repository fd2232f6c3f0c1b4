# tcptrail_add_bpf_skeleton(<target> NAME <skel-name> SOURCES <.bpf.c...>
#                           [INCLUDES <dir...>])
#
# Compiles each .bpf.c with clang (-g -O2 -target bpf), links them into one
# object with `bpftool gen object`, generates <skel-name>.skel.h with
# `bpftool gen skeleton` and exposes it through an INTERFACE target.

set(TCPTRAIL_CLANG_MIN_VERSION 14)

find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

execute_process(COMMAND ${BPF_CLANG} --version OUTPUT_VARIABLE _clang_ver_out)
string(REGEX MATCH "clang version ([0-9]+)" _m "${_clang_ver_out}")
if(NOT CMAKE_MATCH_1 OR CMAKE_MATCH_1 LESS TCPTRAIL_CLANG_MIN_VERSION)
  message(FATAL_ERROR "tcptrail needs clang >= ${TCPTRAIL_CLANG_MIN_VERSION} "
                      "for BPF (found: ${_clang_ver_out})")
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|amd64")
  set(TCPTRAIL_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(TCPTRAIL_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "unsupported arch ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(tcptrail_add_bpf_skeleton target)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;INCLUDES" ${ARGN})
  set(outdir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  file(MAKE_DIRECTORY ${outdir})
  set(objs)
  set(incflags)
  foreach(inc ${ARG_INCLUDES})
    list(APPEND incflags -I${inc})
  endforeach()
  foreach(src ${ARG_SOURCES})
    get_filename_component(base ${src} NAME_WE)
    set(obj ${outdir}/${base}.bpf.o)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${BPF_CLANG} -g -O2 -target bpf -Wall -Werror
              -D__TARGET_ARCH_${TCPTRAIL_BPF_ARCH}
              -I${CMAKE_SOURCE_DIR}/bpf/vmlinux/${TCPTRAIL_BPF_ARCH}
              -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/include
              ${incflags}
              -MD -MF ${obj}.d
              -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
      DEPFILE ${obj}.d
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${src}
      COMMENT "BPF ${src}"
      VERBATIM)
    list(APPEND objs ${obj})
  endforeach()
  set(linked ${outdir}/${ARG_NAME}.o)
  set(skel ${outdir}/${ARG_NAME}.skel.h)
  add_custom_command(
    OUTPUT ${linked}
    COMMAND ${BPFTOOL} gen object ${linked} ${objs}
    DEPENDS ${objs}
    COMMENT "bpftool gen object ${ARG_NAME}.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${linked} name ${ARG_NAME} > ${skel}
    DEPENDS ${linked}
    COMMENT "bpftool gen skeleton ${ARG_NAME}.skel.h"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS ${skel})
  add_library(${target} INTERFACE)
  target_include_directories(${target} INTERFACE ${outdir})
  add_dependencies(${target} ${target}_gen)
endfunction()
