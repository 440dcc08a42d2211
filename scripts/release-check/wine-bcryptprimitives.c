/* Wine 8 (Debian 12) lacks bcryptprimitives.dll, which Rust's standard
 * library imports for ProcessPrng on Windows 10 and later. This stand-in,
 * for Wine only, answers from RtlGenRandom (advapi32's SystemFunction036). */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
