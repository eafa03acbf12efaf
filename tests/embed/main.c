#include <nabla/nabla.h>
#include <stdio.h>
int main(void) { return printf("nabla %s\n", nb_version()) < 0; }
