# Sourced: makes wgpu find NVIDIA's Vulkan driver on a bare Linux GPU machine.
# Unpacks a `.gl/` folder of Debian packages (libvulkan1 …) where no Vulkan loader is installed,
# and points VK_DRIVER_FILES at NVIDIA's ICD, writing a driver file when the image has none.
if ! ldconfig -p | grep -q libvulkan.so.1 && [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for j in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
           /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$j" ]; then export VK_DRIVER_FILES="$j"; break; fi
  done
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  # NVIDIA's Vulkan ICD lives in its GLX/EGL library; point a driver file at whichever exists.
  lib=$(ldconfig -p | awk '/libGLX_nvidia\.so\.0|libEGL_nvidia\.so\.0/ {print $NF; exit}')
  [ -z "$lib" ] && lib=$(find / -xdev \( -name 'libGLX_nvidia.so.0' -o -name 'libEGL_nvidia.so.0' \) 2>/dev/null | head -1)
  if [ -n "$lib" ]; then
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >/tmp/nvidia_icd.json
    export VK_DRIVER_FILES=/tmp/nvidia_icd.json
  fi
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
