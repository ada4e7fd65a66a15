/*
 * TEST-ONLY stand-in for bcryptprimitives.dll under Debian's Wine 8.
 *
 * Rust's standard library on Windows takes its random numbers (HashMap
 * seeds) from ProcessPrng in bcryptprimitives.dll, which every Windows 10
 * and later has but Debian's Wine 8 does not, so any Rust .exe stops before
 * main with status c0000135 there. .ci/windows builds this file with the
 * mingw compiler and puts the DLL next to tillgate.exe in a scratch folder
 * for the Wine smoke test only; it is never shipped.
 *
 * ProcessPrng is documented as always succeeding; it is built here on
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000u ? 0x40000000u : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
